"""Findings count columns in code points from 1; LSP counts from 0 in the code units the client
negotiated (UTF-16 unless it offered otherwise). One table per analysed text converts between them,
so an emoji or a non-BMP character earlier on a line never shifts a squiggle.

Lines are split where Python and LSP split them (\\n, \\r\\n, \\r), never at form feeds.
"""

from __future__ import annotations

from nnprobe.core.finding import Position
from nnprobe.core.lines import split_lines

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"


def code_units(text: str, encoding: str) -> int:
    """The length of `text` in the code units of `encoding`."""
    if text.isascii() or encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def code_points(line: str, units: int, encoding: str) -> int:
    """The 0-based code-point index of the character at code-unit offset `units` in `line`
    (clamped to the line; an offset inside a character lands after it)."""
    if line.isascii() or encoding == UTF32:
        return min(max(units, 0), len(line))
    seen = 0
    for index, char in enumerate(line):
        if seen >= units:
            return index
        seen += code_units(char, encoding)
    return len(line)


class LineIndex:
    """Converts positions in one text between the core's and the client's conventions."""

    def __init__(self, text: str, encoding: str = UTF16) -> None:
        self.lines = split_lines(text)
        self.encoding = encoding

    def line(self, number: int) -> str:
        """The 0-based line `number`, or "" beyond the end."""
        return self.lines[number] if 0 <= number < len(self.lines) else ""

    def to_lsp(self, position: Position) -> tuple[int, int]:
        """A 1-based code-point position to a 0-based (line, code-unit character) pair, clamped
        to the text: past the last line means the end of the text."""
        line = position.line - 1
        if line < 0:
            return 0, 0
        if line >= len(self.lines):
            if not self.lines:
                return 0, 0
            last = len(self.lines) - 1
            return last, code_units(self.lines[last], self.encoding)
        text = self.lines[line]
        column = min(max(position.column - 1, 0), len(text))
        return line, code_units(text[:column], self.encoding)

    def to_core(self, line: int, character: int) -> Position:
        """A 0-based LSP position to the core's 1-based code-point position."""
        return Position(line + 1, code_points(self.line(line), character, self.encoding) + 1)
