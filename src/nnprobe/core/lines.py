"""Lines numbered the way Python's tokenizer numbers them.

Python ends a line at \\n, \\r\\n or \\r only; str.splitlines also splits at \\f, \\v, \\x1c and
others, which would shift every finding after such a character onto the wrong line.
"""

from __future__ import annotations

import re

NEWLINE = re.compile(r"\r\n|\r|\n")


def split_lines(text: str) -> list[str]:
    """Lines without their terminators; a final newline does not start an extra line."""
    lines = NEWLINE.split(text)
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines
