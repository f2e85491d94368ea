"""Where a line of a document went after an edit, so positions computed on an older text (runtime
findings copied onto a training script, the last probe's layer lines) follow the user's edits the
way an editor's markers do, until the next probe computes them afresh.

The server syncs whole documents (app.py says why), so an edit arrives as the old and the new text,
not as ranges: the lines the two share at the start stay, the lines they share at the end move by
the change in line count, and in between the two texts are matched line by line (difflib), which
keeps the lines an edit did not touch. A line that was replaced or deleted goes to the start of
what replaced it, clamped to the document. Lines are split as LSP splits them (\\n, \\r\\n, \\r).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from difflib import SequenceMatcher

_BREAK = re.compile(r"\r\n|\r|\n")


def lines_of(text: str) -> list[str]:
    return _BREAK.split(text)


class LineMap:
    """0-based old line -> 0-based new line, for one edit."""

    def __init__(self, old: str, new: str) -> None:
        before, after = lines_of(old), lines_of(new)
        self.new_count = len(after)
        shortest = min(len(before), len(after))
        head = 0
        while head < shortest and before[head] == after[head]:
            head += 1
        tail = 0
        while tail < shortest - head and before[-1 - tail] == after[-1 - tail]:
            tail += 1
        self.delta = len(after) - len(before)
        self._head = head
        self._tail_from = len(before) - tail  # old lines from here on move by delta
        # (old start, new start, equal?, old end) of each block between head and tail
        self._blocks: list[tuple[int, int, bool, int]] = []
        middle_old = before[head : len(before) - tail]
        middle_new = after[head : len(after) - tail]
        if middle_old:
            matcher = SequenceMatcher(None, middle_old, middle_new, autojunk=False)
            for tag, i1, i2, j1, _ in matcher.get_opcodes():
                self._blocks.append((head + i1, head + j1, tag == "equal", head + i2))
        self._starts = [block[0] for block in self._blocks]

    @property
    def identity(self) -> bool:
        """True when no line moved (edits within lines, or none)."""
        return self.delta == 0 and all(
            old == new and (equal or end - old <= 1) for old, new, equal, end in self._blocks
        )

    def __call__(self, line: int) -> int:
        if line < self._head:
            return line
        if line >= self._tail_from:
            return self._clamp(line + self.delta)
        old, new, equal, _ = self._blocks[bisect_right(self._starts, line) - 1]
        return self._clamp(new + (line - old) if equal else new)

    def _clamp(self, line: int) -> int:
        return max(0, min(line, self.new_count - 1))
