"""Code actions over the diagnostics the server holds (not the ones the client echoes back, which
some clients strip of `data`): a quick fix per diagnostic whose data carries a fix, "Suppress NPxxx
on this line", and `source.fixAll.nnprobe`, which applies every safe fix that does not overlap an
earlier one in one edit (a second run picks up the rest).

Fixes are offered only while the buffer is still the version they were computed on, and the edit
names that version, so a client refuses it rather than applying it to moved text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from nnprobe.server.convert import SOURCE, lsp_range, text_edits
from nnprobe.server.positions import LineIndex
from nnprobe.server.suppress import suppression_edit

if TYPE_CHECKING:
    from pygls.workspace import TextDocument

    from nnprobe.server.app import NnprobeServer

FIX_ALL = "source.fixAll.nnprobe"
FIX_ALL_TITLE = "Fix all nnprobe auto-fixable problems"
_CODE = re.compile(r"NP\d{3}")

Position = tuple[int, int]


def _pos(position: types.Position) -> Position:
    return position.line, position.character


def _shares_a_line(a: types.Range, b: types.Range) -> bool:
    """Whether two ranges share a line: a cursor anywhere on a diagnostic's line gets its actions,
    as Neovim and VS Code users expect."""
    return a.start.line <= b.end.line and b.start.line <= a.end.line


def _overlaps(a: types.Range, b: types.Range) -> bool:
    """Whether two edits would fight over text (two insertions at one point do too)."""
    if _pos(a.start) == _pos(b.start):
        return True
    return _pos(a.start) < _pos(b.end) and _pos(b.start) < _pos(a.end)


def wanted(kind: str, only: Sequence[str] | None) -> bool:
    """LSP kinds are hierarchical: asking for `source.fixAll` includes `source.fixAll.nnprobe`."""
    if not only:
        return True
    return any(kind == o or kind.startswith(o + ".") for o in only)


def _workspace_edit(
    server: NnprobeServer, document: TextDocument, edits: list[types.TextEdit]
) -> types.WorkspaceEdit:
    capabilities = server.client_capabilities.workspace
    versioned = bool(
        capabilities
        and capabilities.workspace_edit
        and capabilities.workspace_edit.document_changes
    )
    if versioned:
        identifier = types.OptionalVersionedTextDocumentIdentifier(
            uri=document.uri, version=document.version
        )
        return types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=identifier, edits=list(edits))]
        )
    return types.WorkspaceEdit(changes={document.uri: list(edits)})


def _current(server: NnprobeServer, uri: str, version: int | None) -> bool:
    document = server.open_document(uri)
    return document is not None and version is not None and document.version == version


def _fix_title(diagnostic: types.Diagnostic) -> str:
    data: Any = diagnostic.data
    return str(data["fix"]["title"])


def _is_safe(diagnostic: types.Diagnostic) -> bool:
    data: Any = diagnostic.data
    return bool(data["fix"].get("applicability") == "safe")


def quick_fixes(
    server: NnprobeServer,
    document: TextDocument,
    diagnostics: Iterable[tuple[types.Diagnostic, bool]],
) -> list[types.CodeAction]:
    """One action per fixable diagnostic, then one suppression per code, in diagnostic order."""
    actions: list[types.CodeAction] = []
    suppressions: list[types.CodeAction] = []
    suppressed: set[tuple[str, int]] = set()
    index = LineIndex(document.source, server.position_encoding)
    for diagnostic, current in diagnostics:
        edits = text_edits(diagnostic.data) if current else None
        if edits:
            actions.append(
                types.CodeAction(
                    title=_fix_title(diagnostic),
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic],
                    edit=_workspace_edit(server, document, edits),
                    is_preferred=_is_safe(diagnostic),
                )
            )
        code = str(diagnostic.code or "")
        if not _CODE.fullmatch(code):
            continue
        first, last = diagnostic.range.start.line, diagnostic.range.end.line
        if last > first and diagnostic.range.end.character == 0:
            last -= 1
        edit = suppression_edit(document.source, first + 1, last + 1, code)
        if edit is None or (code, edit.range.start.line) in suppressed:
            continue
        suppressed.add((code, edit.range.start.line))
        text_edit = types.TextEdit(range=lsp_range(edit.range, index), new_text=edit.new_text)
        suppressions.append(
            types.CodeAction(
                title=f"Suppress {code} on this line",
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[diagnostic],
                edit=_workspace_edit(server, document, [text_edit]),
            )
        )
    return actions + suppressions


def fix_all(
    server: NnprobeServer, document: TextDocument, diagnostics: Iterable[types.Diagnostic]
) -> types.CodeAction | None:
    """Every safe fix, in document order, skipping any that overlaps one already taken."""
    taken: list[types.TextEdit] = []
    seen: set[str] = set()
    candidates = []
    for diagnostic in diagnostics:
        edits = text_edits(diagnostic.data)
        if edits and _is_safe(diagnostic):
            candidates.append((min(_pos(e.range.start) for e in edits), edits))
    for _, edits in sorted(candidates, key=lambda item: item[0]):
        key = repr([(e.range, e.new_text) for e in edits])
        if key in seen:
            continue
        if any(_overlaps(e.range, t.range) for e in edits for t in taken):
            continue
        seen.add(key)
        taken.extend(edits)
    if not taken:
        return None
    return types.CodeAction(
        title=FIX_ALL_TITLE,
        kind=FIX_ALL,
        edit=_workspace_edit(server, document, taken),
    )


def code_actions(
    server: NnprobeServer, params: types.CodeActionParams
) -> list[types.CodeAction] | None:
    uri = params.text_document.uri
    document = server.open_document(uri)
    if document is None:
        return None
    only = params.context.only
    held = [
        (diagnostic, _current(server, uri, entry.version))
        for _, entry, diagnostic in server.store.items(uri)
        if diagnostic.source == SOURCE
    ]
    actions: list[types.CodeAction] = []
    if wanted(types.CodeActionKind.QuickFix, only):
        here = [(d, current) for d, current in held if _shares_a_line(d.range, params.range)]
        actions.extend(quick_fixes(server, document, here))
    if wanted(FIX_ALL, only):
        action = fix_all(server, document, [d for d, current in held if current])
        if action is not None:
            actions.append(action)
    return actions


def register(server: NnprobeServer) -> None:
    options = types.CodeActionOptions(
        code_action_kinds=[types.CodeActionKind.QuickFix, FIX_ALL], resolve_provider=False
    )

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION, options)
    def code_action(
        ls: NnprobeServer, params: types.CodeActionParams
    ) -> list[types.CodeAction] | None:
        return code_actions(ls, params)
