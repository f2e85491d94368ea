"""Code actions over the wire: each edit is applied to the text, sent back as a change, and the
server's next diagnostics show the finding gone."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsp_helpers import Document, apply_workspace_edit, codes
from lsp_scripts import BUGGY, FIX_ALL, UNICODE
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")


def on_line(line: int) -> types.Range:
    return types.Range(
        start=types.Position(line=line, character=0), end=types.Position(line=line, character=0)
    )


async def opened(client: LanguageClient, path: Path, text: str) -> Document:
    document = Document(client, path, text)
    document.open()
    await document.diagnostics()
    return document


async def test_quick_fix_removes_the_softmax(client: LanguageClient, workspace: Path) -> None:
    document = await opened(client, workspace / "quickfix.py", UNICODE)
    found = next(d for d in client.diagnostics[document.uri] if d.code == "NP104")

    actions = await document.code_actions(found.range, only=[types.CodeActionKind.QuickFix])
    titles = [a.title for a in actions]
    assert titles == ["Remove the softmax", "Suppress NP104 on this line"]
    fix = actions[0]
    assert fix.is_preferred is True
    assert fix.kind == types.CodeActionKind.QuickFix
    assert fix.edit is not None

    fixed = apply_workspace_edit(document.text, document.uri, fix.edit)
    assert '    label = "é😀𝐱"; loss = criterion(logits, y)\n' in fixed
    document.change(fixed)
    assert codes(await document.diagnostics()) == []


async def test_unsafe_fix_is_titled_and_not_preferred(
    client: LanguageClient, workspace: Path
) -> None:
    document = await opened(client, workspace / "unsafe.py", FIX_ALL)
    found = next(d for d in client.diagnostics[document.uri] if d.code == "NP122")
    (fix, _suppress) = await document.code_actions(found.range, only=["quickfix"])
    assert fix.title == "Add weights_only=True (unsafe)"
    assert not fix.is_preferred
    assert fix.edit is not None
    fixed = apply_workspace_edit(document.text, document.uri, fix.edit)
    assert 'torch.load("model.pt", weights_only=True)' in fixed
    document.change(fixed)
    assert "NP122" not in codes(await document.diagnostics())


async def test_suppression_comment_silences_the_line(
    client: LanguageClient, workspace: Path
) -> None:
    document = await opened(client, workspace / "suppress.py", BUGGY)
    actions = await document.code_actions(on_line(12))
    (suppress,) = [a for a in actions if a.title == "Suppress NP104 on this line"]
    assert suppress.edit is not None

    suppressed = apply_workspace_edit(document.text, document.uri, suppress.edit)
    assert (
        "    loss = criterion(F.softmax(logits, dim=1), y)  # nnprobe: ignore[NP104]\n"
        in suppressed
    )
    document.change(suppressed)
    assert await document.diagnostics() == []


async def test_suppression_merges_into_an_existing_comment(
    client: LanguageClient, workspace: Path
) -> None:
    text = BUGGY.replace(
        "criterion(F.softmax(logits, dim=1), y)",
        "criterion(F.softmax(logits, dim=1), y)  # nnprobe: ignore[NP101]",
    )
    document = await opened(client, workspace / "merge.py", text)
    actions = await document.code_actions(on_line(12))
    (suppress,) = [a for a in actions if a.title.startswith("Suppress")]
    assert suppress.edit is not None
    merged = apply_workspace_edit(document.text, document.uri, suppress.edit)
    assert "y)  # nnprobe: ignore[NP101, NP104]\n" in merged
    document.change(merged)
    assert await document.diagnostics() == []


async def test_fix_all_applies_every_safe_fix_in_one_edit(
    client: LanguageClient, workspace: Path
) -> None:
    document = await opened(client, workspace / "fixall.py", FIX_ALL)
    assert codes(client.diagnostics[document.uri]) == ["NP104", "NP104", "NP120", "NP122"]

    whole = types.Range(start=types.Position(line=0, character=0), end=on_line(0).end)
    (action,) = await document.code_actions(whole, only=["source.fixAll"])
    assert action.title == "Fix all nnprobe auto-fixable problems"
    assert action.kind == "source.fixAll.nnprobe"
    assert action.edit is not None

    fixed = apply_workspace_edit(document.text, document.uri, action.edit)
    assert "criterion(logits, y)" in fixed
    assert "F.cross_entropy(x, y)" in fixed
    assert "optimizer.zero_grad()" in fixed
    document.change(fixed)
    # The unsafe weights_only fix is left for a human.
    assert codes(await document.diagnostics()) == ["NP122"]


async def test_no_fixes_for_a_stale_version(client: LanguageClient, workspace: Path) -> None:
    document = await opened(client, workspace / "stale.py", BUGGY)
    # Sent and immediately asked about: the server still holds the previous version's results.
    document.change(BUGGY + "\n")
    actions = await document.code_actions(on_line(12))
    assert all(not a.title.startswith("Remove") for a in actions)
    await document.diagnostics()
    actions = await document.code_actions(on_line(12))
    assert any(a.title == "Remove the softmax" for a in actions)
