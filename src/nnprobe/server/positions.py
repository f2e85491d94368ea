"""Findings count columns in code points from 1; LSP counts from 0 in the code units the client
negotiated (UTF-16 unless it offered otherwise). One table per analysed text converts between them,
so an emoji or a non-BMP character earlier on a line never shifts a squiggle.

Lines are split where Python and LSP split them (\\n, \\r\\n, \\r), never at form feeds.

A file that is not open in the editor is never read whole for this: `FileLines` streams it, with
the guarded opener, only up to the last line a finding names, and keeps only those lines (each cut
after the last column asked for). A file that has no text positions (a checkpoint, an ONNX graph,
a TensorBoard record file) is not read at all: `AT_START` puts everything on its first line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from nnprobe.core.finding import Position, Range
from nnprobe.core.lines import split_lines
from nnprobe.core.reading import open_regular

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


class AtStart(LineIndex):
    """Every position at the start of the file: for files without lines (binary formats)."""

    def __init__(self, encoding: str = UTF16) -> None:
        super().__init__("", encoding)

    def to_lsp(self, position: Position) -> tuple[int, int]:
        return 0, 0


CHUNK = 2**20
# Enough of a line for any column a finding names; a longer line is kept cut, and a position
# past the cut stays at the cut (no finding points that far into a line).
LINE_PREFIX = 64 * 1024


class FileLines(LineIndex):
    """The lines of a file on disk that `wanted` names (0-based line -> the largest 1-based
    column asked on it), read by streaming the file up to the last of them and no further, at
    most `limit` bytes; other lines are not kept. Positions past the end of the file clamp to
    its end, as for a whole text; lines past `limit` clamp to their first column."""

    def __init__(
        self,
        path: Path,
        wanted: Mapping[int, int],
        encoding: str = UTF16,
        *,
        limit: int,
        roots: Iterable[Path] | None = None,
    ) -> None:
        super().__init__("", encoding)
        self.kept: dict[int, str] = {}
        self.count: int | None = None  # lines in the file, once its end was reached
        self.last = ""  # the file's last line (cut), once its end was reached
        if wanted:
            with open_regular(path, roots=roots) as handle:
                self._scan(handle, wanted, limit)

    def line(self, number: int) -> str:
        return self.kept.get(number, "")

    def to_lsp(self, position: Position) -> tuple[int, int]:
        line = position.line - 1
        if line < 0:
            return 0, 0
        if self.count is not None and line >= self.count:
            if self.count == 0:
                return 0, 0
            return self.count - 1, code_units(self.last, self.encoding)
        text = self.kept.get(line, "")
        column = min(max(position.column - 1, 0), len(text))
        return line, code_units(text[:column], self.encoding)

    def _scan(self, handle: BinaryIO, wanted: Mapping[int, int], limit: int) -> None:
        caps = {n: min(4 * max(column, 1), LINE_PREFIX) for n, column in wanted.items()}
        targets = sorted(caps)
        last_wanted = targets[-1]
        line, current, previous = 0, bytearray(), b""
        seen, carry_cr = 0, False
        while True:
            chunk = handle.read(min(CHUNK, limit - seen)) if seen < limit else b""
            if not chunk:
                break
            seen += len(chunk)
            if carry_cr:
                chunk = b"\r" + chunk
            carry_cr = chunk.endswith(b"\r")  # it may be the first half of a \r\n
            if carry_cr:
                chunk = chunk[:-1]
            if b"\r" in chunk:
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            pos, newlines = 0, chunk.count(b"\n")
            while True:
                target = next((n for n in targets if n >= line), last_wanted)
                if line + newlines <= target:  # no wanted line ends in the rest of the chunk
                    if newlines:
                        end = chunk.rfind(b"\n")
                        if newlines == 1:
                            current += chunk[pos : min(end, pos + LINE_PREFIX - len(current))]
                            previous = bytes(current)
                        else:
                            start = chunk.rfind(b"\n", pos, end) + 1
                            previous = chunk[start : min(end, start + LINE_PREFIX)]
                        line += newlines
                        current.clear()
                        pos = end + 1
                    current += chunk[pos : pos + LINE_PREFIX - len(current)]
                    break
                end = chunk.find(b"\n", pos)
                current += chunk[pos : min(end, pos + LINE_PREFIX - len(current))]
                self._keep(line, current, caps)
                previous, current = bytes(current), bytearray()
                line, pos, newlines = line + 1, end + 1, newlines - 1
                if line > last_wanted:
                    return
            if line == last_wanted and len(current) >= caps[line]:
                self._keep(line, current, caps)
                return
        if seen >= limit and handle.read(1):
            self._keep(line, current, caps)  # lines past the limit stay unknown
            return
        if carry_cr:  # a final lone \r ends the line it follows
            self._keep(line, current, caps)
            previous, current = bytes(current), bytearray()
            line += 1
        if current:  # a last line without a newline
            self._keep(line, current, caps)
            self.count, self.last = line + 1, _text(current)
        else:
            self.count, self.last = line, _text(previous)

    def _keep(self, line: int, data: bytearray, caps: Mapping[int, int]) -> None:
        cap = caps.get(line)
        if cap is not None:
            self.kept[line] = _text(data[:cap])


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", errors="replace")


def wanted_lines(ranges: Iterable[Range]) -> dict[int, int]:
    """0-based line -> the largest 1-based column any of `ranges` names on it."""
    wanted: dict[int, int] = {}
    for range in ranges:
        for position in (range.start, range.end):
            line = position.line - 1
            if line >= 0:
                wanted[line] = max(wanted.get(line, 1), position.column)
    return wanted
