"""Static diagnostics over the wire: open, change, save, close, ranges in UTF-16, stale versions."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from lsp_helpers import Document, codes
from lsp_scripts import BUGGY, CLEAN, UNICODE
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")


def np104(diagnostics: list[types.Diagnostic]) -> types.Diagnostic:
    (found,) = [d for d in diagnostics if d.code == "NP104"]
    return found


async def test_open_publishes_np104_with_range_href_and_source(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "open.py", BUGGY)
    document.open()
    diagnostics = await document.diagnostics()

    assert codes(diagnostics) == ["NP104"]
    found = np104(diagnostics)
    line = BUGGY.splitlines()[12]
    start = line.index("F.softmax")
    assert found.range == types.Range(
        start=types.Position(line=12, character=start),
        end=types.Position(line=12, character=line.index(", y)")),
    )
    assert found.source == "nnprobe"
    assert found.severity == types.DiagnosticSeverity.Error
    assert found.code_description is not None
    assert found.code_description.href.endswith("/NP104")
    assert "CrossEntropyLoss" in found.message
    assert found.data["fix"]["applicability"] == "safe"
    assert found.data["name"] == "softmax-before-cross-entropy"


async def test_range_counts_utf16_units_after_non_bmp_characters(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "unicode.py", UNICODE)
    document.open()
    found = np104(await document.diagnostics())

    line = UNICODE.splitlines()[12]
    points = line.index("F.softmax")
    # 😀 and 𝐱 are two UTF-16 code units each; é is one.
    assert found.range.start == types.Position(line=12, character=points + 2)
    end = line.index(", y)")
    assert found.range.end == types.Position(line=12, character=end + 2)
    before = line.encode("utf-16-le")[: 2 * found.range.start.character].decode("utf-16-le")
    assert before.endswith("; loss = criterion(")


async def test_change_relints_and_save_relints(client: LanguageClient, workspace: Path) -> None:
    document = Document(client, workspace / "change.py", BUGGY)
    document.open()
    assert codes(await document.diagnostics()) == ["NP104"]

    document.change(CLEAN)
    assert await document.diagnostics() == []

    document.change(BUGGY)
    document.save()
    assert codes(await document.diagnostics()) == ["NP104"]


async def test_superseded_versions_are_never_published(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "burst.py", BUGGY)
    document.open()
    await document.diagnostics()
    first = len(document.recorder.history[document.uri])

    for index in range(8):
        document.change(BUGGY if index % 2 == 0 else CLEAN + f"\n# edit {index}\n")
    final = document.change(CLEAN)
    assert await document.diagnostics() == []

    versions = [p.version for p in document.recorder.history[document.uri][first:]]
    assert versions == [final], f"results of superseded versions were published: {versions}"


async def test_close_clears_the_documents_diagnostics(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "close.py", BUGGY)
    document.open()
    assert codes(await document.diagnostics()) == ["NP104"]
    cleared = document.recorder.expect(document.uri)
    document.close()
    assert list((await cleared).diagnostics) == []


async def test_files_without_torch_get_no_diagnostics(
    client: LanguageClient, workspace: Path
) -> None:
    # Not even its syntax error: that is the Python language server's business.
    document = Document(client, workspace / "plain.py", "print('hello'\n")
    document.open()
    assert await document.diagnostics() == []


async def test_syntax_error_is_reported_where_it_is(
    client: LanguageClient, workspace: Path
) -> None:
    broken = BUGGY.replace("def train_step(x, y):", "def train_step(x, y)")
    document = Document(client, workspace / "broken.py", broken)
    document.open()
    (found,) = await document.diagnostics()
    assert found.code == "NP906"
    assert found.range.start.line == 9


async def test_a_dead_lint_process_is_replaced(client: LanguageClient, workspace: Path) -> None:
    document = Document(client, workspace / "survivor.py", BUGGY)
    document.open()
    assert codes(await document.diagnostics()) == ["NP104"]
    info = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.debugInfo")
    )
    os.kill(info["lintPid"], signal.SIGKILL)
    document.change(CLEAN)
    assert await document.diagnostics() == []
    document.change(BUGGY)
    assert codes(await document.diagnostics()) == ["NP104"]
