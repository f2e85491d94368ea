"""Where a line goes after an edit (nnprobe.server.line_map): inserts and deletes above and
inside, a replaced block, line breaks of every LSP kind, and the store moving only the
non-static diagnostics."""

from __future__ import annotations

from lsprotocol import types

from nnprobe.server.line_map import LineMap
from nnprobe.server.store import STATIC, DiagnosticStore

TEXT = "".join(f"line {i}\n" for i in range(10))


def test_lines_after_an_insert_move_down_and_lines_before_stay() -> None:
    lines = TEXT.splitlines(keepends=True)
    edited = "".join([*lines[:4], "a\n", "b\n", "c\n", *lines[4:]])
    moved = LineMap(TEXT, edited)
    assert [moved(i) for i in range(10)] == [0, 1, 2, 3, 7, 8, 9, 10, 11, 12]
    back = LineMap(edited, TEXT)
    assert [back(moved(i)) for i in range(10)] == list(range(10))


def test_replaced_lines_go_to_the_start_of_their_replacement() -> None:
    lines = TEXT.splitlines(keepends=True)
    edited = "".join([*lines[:3], "new\n", *lines[6:]])  # lines 3-5 become one line
    moved = LineMap(TEXT, edited)
    assert [moved(i) for i in range(10)] == [0, 1, 2, 3, 3, 3, 4, 5, 6, 7]


def test_untouched_lines_between_two_edits_keep_their_place() -> None:
    lines = TEXT.splitlines(keepends=True)
    edited = "".join(["top\n", *lines[:5], *lines[7:], "end\n"])
    moved = LineMap(TEXT, edited)
    assert [moved(i) for i in (0, 4, 5, 6, 7, 9)] == [1, 5, 6, 6, 6, 8]


def test_deleting_everything_clamps_to_the_document_and_edits_in_a_line_move_nothing() -> None:
    assert LineMap(TEXT, "")(8) == 0
    assert LineMap(TEXT, TEXT.replace("line 4", "line four")).identity
    assert LineMap("a\r\nb\rc\n", "x\na\r\nb\rc\n")(2) == 3


def test_the_store_moves_runtime_diagnostics_but_not_the_lint() -> None:
    sent: list[types.PublishDiagnosticsParams] = []
    store = DiagnosticStore(sent.append)

    def at(line: int) -> types.Diagnostic:
        where = types.Position(line=line, character=4)
        return types.Diagnostic(range=types.Range(start=where, end=where), message=str(line))

    store.replace(STATIC, "u", [at(5)], version=1, publish=False)
    store.replace("nnprobe.runtime:x", "u", [at(5)], publish=False)
    assert store.shift("u", lambda line: line + 3, publish=False) and not sent
    store.flush("u")
    assert [d.range.start.line for d in sent[-1].diagnostics] == [5, 8]
    store.flush("u")  # nothing moved since
    assert len(sent) == 1
