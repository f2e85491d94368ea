"""Source text for the text renderer's snippets and fix previews, read only when a finding needs it.

Lines are split the way Python's tokenizer numbers them (\\n, \\r\\n, \\r), so a finding's line and
code-point column land on the same character the rule saw.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Callable, Iterable
from pathlib import Path

from nnprobe.core.finding import Edit, Position
from nnprobe.core.lines import NEWLINE, split_lines

SourceReader = Callable[[str], "str | None"]

# Checkpoints can be gigabytes; nothing that large is a script worth quoting.
MAX_SOURCE_BYTES = 4 * 1024 * 1024

_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def read_text_file(path: str) -> str | None:
    """The file's text, or None when it cannot be read, is too large, or is not text."""
    try:
        file = Path(path)
        if not file.is_file() or file.stat().st_size > MAX_SOURCE_BYTES:
            return None
        data = file.read_bytes()
    except OSError:
        return None
    if b"\x00" in data:
        return None
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return None


class SourceCache:
    """Reads each file at most once, and only when asked for one of its lines."""

    def __init__(self, reader: SourceReader = read_text_file) -> None:
        self._reader = reader
        self._texts: dict[str, str | None] = {}

    def text(self, path: str) -> str | None:
        if path not in self._texts:
            self._texts[path] = self._reader(path)
        return self._texts[path]

    def line(self, path: str, number: int) -> str | None:
        text = self.text(path)
        if text is None:
            return None
        lines = split_lines(text)
        if 1 <= number <= len(lines):
            return lines[number - 1]
        return None


def split_lines_keepends(text: str) -> list[str]:
    """Lines with their terminators, split as `split_lines` splits them."""
    return _LINE.findall(text)


def _line_starts(text: str) -> list[int]:
    return [0, *(match.end() for match in NEWLINE.finditer(text))]


def offset(text: str, starts: list[int], position: Position) -> int:
    """The string index of a 1-based line and code-point column, clamped into the text."""
    if position.line > len(starts):
        return len(text)
    start = starts[max(position.line, 1) - 1]
    following = starts[position.line] if position.line < len(starts) else len(text)
    # A column past the end of the line stops before its terminator.
    line_end = start + len(NEWLINE.sub("", text[start:following]))
    return min(start + max(position.column, 1) - 1, line_end)


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """The text with every edit applied; edits must not overlap."""
    starts = _line_starts(text)
    spans = sorted(
        (
            (offset(text, starts, e.range.start), offset(text, starts, e.range.end), e.new_text)
            for e in edits
        ),
        reverse=True,
    )
    for begin, end, new_text in spans:
        text = text[:begin] + new_text + text[end:]
    return text
