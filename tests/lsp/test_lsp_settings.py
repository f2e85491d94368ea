"""Settings over the wire: the workspace's pyproject.toml is the base, initializationOptions and
workspace/configuration go over it, didChangeConfiguration re-reads them and re-lints, a bad value
is shown as a warning and the last good settings stay."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsp_helpers import TIMEOUT_S, Document, codes
from lsp_scripts import BUGGY, FIX_ALL
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILES = {
    "pyproject.toml": (
        '[tool.nnprobe]\nignore = ["NP122"]\n\n[tool.nnprobe.severity]\nNP104 = "warning"\n'
    ),
}
INIT_OPTIONS = {"nnprobe": {"debounce": 20, "severity": {"NP120": "info"}}}


def by_code(diagnostics: list[types.Diagnostic]) -> dict[str, types.Diagnostic]:
    return {str(d.code): d for d in diagnostics}


async def reconfigure(client: LanguageClient, settings: dict[str, object]) -> None:
    client.set_configuration(settings, section="nnprobe")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))


async def test_pyproject_is_the_base_and_init_options_apply_over_it(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "base.py", FIX_ALL)
    document.open()
    found = by_code(await document.diagnostics())
    assert sorted(found) == ["NP104", "NP120"]  # NP122 ignored by pyproject.toml
    assert found["NP104"].severity == types.DiagnosticSeverity.Warning  # pyproject.toml
    assert found["NP120"].severity == types.DiagnosticSeverity.Information  # initializationOptions


async def test_registers_for_configuration_changes(client: LanguageClient) -> None:
    methods = {r.method for r in getattr(client, "registrations", [])}
    assert types.WORKSPACE_DID_CHANGE_CONFIGURATION in methods
    assert types.WORKSPACE_DID_CHANGE_WATCHED_FILES in methods


async def test_did_change_configuration_relints_open_documents(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "reconfigured.py", FIX_ALL)
    document.open()
    assert codes(await document.diagnostics()) == ["NP104", "NP104", "NP120"]

    await reconfigure(client, {"ignore": ["NP104"]})
    # Same version, new settings: the editor's ignore adds to the file's.
    found = await document.diagnostics(lambda p: "NP104" not in codes(list(p.diagnostics)))
    assert codes(found) == ["NP120"]

    await reconfigure(client, {"ignore": [], "select": ["NP122"]})
    # The editor's select replaces the file's selection; the file's ignore still holds.
    assert await document.diagnostics(lambda p: not p.diagnostics) == []

    await reconfigure(client, {})
    assert codes(await document.diagnostics(lambda p: len(p.diagnostics) == 3)) == [
        "NP104",
        "NP104",
        "NP120",
    ]


async def test_bad_settings_warn_and_keep_the_last_good_ones(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "bad_settings.py", BUGGY)
    document.open()
    await document.diagnostics()
    await reconfigure(client, {"ignore": ["NP104"]})
    assert await document.diagnostics(lambda p: not p.diagnostics) == []

    message = client.recorder.next_message()  # type: ignore[attr-defined]
    await reconfigure(client, {"select": ["NP999"], "debounce": "soon"})
    shown = await message
    assert shown.type == types.MessageType.Warning
    assert "NP999" in shown.message and "keeping the previous" in shown.message

    # Still ignoring NP104: the last good settings are in force.
    document.change(BUGGY + "\n")
    assert await document.diagnostics() == []

    message = client.recorder.next_message()  # type: ignore[attr-defined]
    await reconfigure(client, {"debounce": -5})
    assert "debounce" in (await message).message
    await reconfigure(client, {})
    assert codes(await document.diagnostics(lambda p: bool(p.diagnostics))) == ["NP104"]


async def test_changed_config_file_is_reread(client: LanguageClient, workspace: Path) -> None:
    document = Document(client, workspace / "watched.py", FIX_ALL)
    document.open()
    assert "NP122" not in codes(await document.diagnostics())

    pyproject = workspace / "pyproject.toml"
    original = pyproject.read_text()
    pyproject.write_text("[tool.nnprobe]\n")
    try:
        client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=pyproject.as_uri(), type=types.FileChangeType.Changed)]
            )
        )
        found = await document.diagnostics(lambda p: "NP122" in codes(list(p.diagnostics)))
        assert codes(found) == ["NP104", "NP104", "NP120", "NP122"]
    finally:
        pyproject.write_text(original)
        client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=pyproject.as_uri(), type=types.FileChangeType.Changed)]
            )
        )
        await document.diagnostics(lambda p: "NP122" not in codes(list(p.diagnostics)))


async def test_broken_config_file_is_reported_once(client: LanguageClient, workspace: Path) -> None:
    sub = workspace / "sub"
    sub.mkdir()
    (sub / "nnprobe.toml").write_text('ignore = ["NOPE"]\n')
    message = client.recorder.next_message()  # type: ignore[attr-defined]
    document = Document(client, sub / "script.py", BUGGY)
    document.open()
    shown = await message
    assert "nnprobe.toml" in shown.message and "NOPE" in shown.message
    # Linted with the defaults meanwhile.
    assert codes(await document.diagnostics()) == ["NP104"]


async def test_without_debounce_published_versions_only_increase(
    client: LanguageClient, workspace: Path
) -> None:
    await reconfigure(client, {"debounce": 0})
    big = BUGGY + "".join(
        f"\n\ndef helper_{i}(x):\n    return torch.relu(x) * {i}\n" for i in range(400)
    )
    document = Document(client, workspace / "fast.py", big)
    document.open()
    await document.diagnostics()
    first = len(document.recorder.history[document.uri])
    for index in range(30):
        document.change(big + f"\n# edit {index}\n")
    final = document.version
    assert codes(await document.diagnostics()) == ["NP104"]
    versions = [p.version for p in document.recorder.history[document.uri][first:]]
    assert versions == sorted(set(versions)), versions
    assert versions[-1] == final
    await reconfigure(client, {})


async def test_log_level_debug_reaches_the_client(client: LanguageClient, workspace: Path) -> None:
    await reconfigure(client, {"logLevel": "debug"})
    document = Document(client, workspace / "logged.py", BUGGY)
    before = len(client.log_messages)
    document.open()
    await document.diagnostics()
    async with asyncio.timeout(TIMEOUT_S):
        while not any("diagnostics in" in m.message for m in client.log_messages[before:]):
            await client.wait_for_notification(types.WINDOW_LOG_MESSAGE)
    debug = [m for m in client.log_messages[before:] if "diagnostics in" in m.message]
    assert debug[0].type == types.MessageType.Log
    await reconfigure(client, {})
