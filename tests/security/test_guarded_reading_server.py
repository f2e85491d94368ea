"""The language server reads scripts, settings and training logs through the same guarded reader
as the CLI (issue 12, item 4): the real `nnprobe serve` in a subprocess, driven by pytest-lsp.

A FIFO script used to block the lint process for the session through the inspect command, and
a deeply nested pyproject.toml silently disabled every diagnostic. Here each hostile file gets
its NP901 (scripts, logs) or a warning with the defaults linting (settings), every answer comes
within the client's timeout, an editor buffer over the script cap is refused as the file would
be, and a document opened afterwards still gets its diagnostics.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboard")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lsp"))

import corpus_reading as cr  # noqa: E402
import pytest_lsp  # noqa: E402
from lsp_helpers import Document, initialize, serve  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from runtime_workspace import changed, codes  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")
ANSWER_S = 20.0

SCRIPTS = {  # folder -> (builder of train.py, what the NP901 says)
    "fifo": (cr.fifo("train.py"), "named pipe"),
    "devzero": (cr.link("train.py", "/dev/zero"), "outside the workspace"),
    "out": (cr.link_out("train.py", cr.GOOD_SCRIPT), "outside the workspace"),
    "big": (cr.sparse("train.py", "import torch\n", cr.SPARSE_SCRIPT), "over the 2.0 MiB"),
}
LOGS = {  # folder -> (builder, what the NP901 says)
    "fifo": (cr.fifo("metrics.csv"), "named pipe"),
    "devzero": (cr.link("metrics.csv", "/dev/zero"), "outside the workspace"),
    "out": (cr.link_out("metrics.csv", cr.GOOD_LOG), "outside the workspace"),
    "wide": (cr.write("metrics.csv", cr.WIDE_CSV), "field longer than"),
    "deep": (cr.write("log.jsonl", cr.DEEP_JSON), "nests JSON deeper"),
    "tensorboard": (cr.tfevents_huge_record, "declares 4611686018427387904 bytes"),
}
CONFIGS = {  # folder -> (builder of its settings file, what the warning says)
    "deepcfg": (cr.write("pyproject.toml", cr.DEEP_TOML), "nests arrays or tables deeper"),
    "linkcfg": (cr.link_out("pyproject.toml", cr.IGNORE_NP101), "outside the workspace"),
}


def build(root: Path, group: str, name: str, builder: Any) -> Path:
    folder = root / group / name
    folder.mkdir(parents=True)
    # Files "outside the workspace" go beside the workspace, named per case.
    return Path(builder(folder, root.parent / f"outside-{group}-{name}" / "sentinel"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("guarded")
    root = base / "workspace"
    root.mkdir()
    paths = {"root": root}
    for group, table in (("scripts", SCRIPTS), ("logs", LOGS), ("configs", CONFIGS)):
        for name, (builder, _) in table.items():
            (root.parent / f"outside-{group}-{name}").mkdir()
            paths[f"{group}/{name}"] = build(root, group, name, builder)
    (root / "logs" / "good").mkdir()
    paths["logs/good"] = root / "logs" / "good" / "metrics.csv"
    paths["logs/good"].write_text(cr.GOOD_LOG, encoding="utf-8")
    return paths


@pytest_lsp.fixture(
    config=serve(),
    scope="module",
)
async def client(lsp_client: LanguageClient, workspace: dict[str, Path]):  # type: ignore[no-untyped-def]
    root = workspace["root"]
    await initialize(lsp_client, root, {"debounce": 20})
    yield
    await lsp_client.shutdown_session()


async def inspect(client: LanguageClient, path: Path) -> dict[str, Any]:
    result = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nnprobe.inspect", arguments=[path.as_uri()])
        ),
        ANSWER_S,
    )
    return dict(result)


@pytest.mark.parametrize("name", list(SCRIPTS))
async def test_inspect_command_refuses_the_script(
    client: LanguageClient, workspace: dict[str, Path], name: str
) -> None:
    result = await inspect(client, workspace[f"scripts/{name}"])
    assert result["kind"] == "findings", result
    [finding] = result["findings"]
    assert finding["code"] == "NP901", finding
    assert "train.py" in finding["message"] and SCRIPTS[name][1] in finding["message"], finding


@pytest.mark.parametrize("name", list(CONFIGS))
async def test_a_refused_config_warns_and_the_defaults_lint(
    client: LanguageClient, workspace: dict[str, Path], name: str
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    message = recorder.next_message()
    document = Document(client, workspace[f"configs/{name}"].with_name("train.py"), cr.GOOD_SCRIPT)
    document.open()
    diagnostics = await document.diagnostics()
    # The linked-out config ignores NP101; the deep one cannot be read: either way the defaults.
    assert [str(d.code) for d in diagnostics] == [cr.GOOD_SCRIPT_CODE]
    warning = await message
    assert "pyproject.toml" in warning.message and CONFIGS[name][1] in warning.message
    assert "default settings" in warning.message


async def test_every_refused_log_gets_np901_and_the_good_log_its_finding(
    client: LanguageClient, workspace: dict[str, Path]
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    logs = {name: workspace[f"logs/{name}"] for name in LOGS}
    changed(client, workspace["logs/good"], *logs.values())
    good = await recorder.wait(workspace["logs/good"].as_uri(), lambda p: bool(p.diagnostics))
    assert codes(good) == {cr.GOOD_LOG_CODE}
    for name, path in logs.items():
        published = await recorder.wait(path.as_uri(), lambda p: bool(p.diagnostics))
        [diagnostic] = published.diagnostics
        assert str(diagnostic.code) == "NP901", (name, diagnostic)
        assert path.name in diagnostic.message and LOGS[name][1] in diagnostic.message, (
            name,
            diagnostic.message,
        )


async def test_an_oversized_buffer_is_refused_not_analysed(
    client: LanguageClient, workspace: dict[str, Path]
) -> None:
    """The editor sends the text itself: the cap on scripts holds for buffers too (a 3 MB one
    would take the static checks seconds and hundreds of MB in the lint process)."""
    text = cr.GOOD_SCRIPT + "x = 1\n" * 500_000
    document = Document(client, workspace["root"] / "huge.py", text)
    document.open()
    [diagnostic] = await document.diagnostics()
    assert str(diagnostic.code) == "NP901"
    assert "huge.py" in diagnostic.message and "over the 2.0 MiB" in diagnostic.message


async def test_a_document_opened_afterwards_is_still_linted(
    client: LanguageClient, workspace: dict[str, Path]
) -> None:
    for name in SCRIPTS:  # once more, after everything else: the lint process is not wedged
        await inspect(client, workspace[f"scripts/{name}"])
    document = Document(client, workspace["root"] / "late.py", cr.GOOD_SCRIPT)
    document.open()
    diagnostics = await document.diagnostics()
    assert [str(d.code) for d in diagnostics] == [cr.GOOD_SCRIPT_CODE]
