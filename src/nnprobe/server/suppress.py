"""The edit behind "Suppress NPxxx on this line": add the code to the line's existing
`# nnprobe: ignore[...]` comment, or append one.

The comment must land where Python sees a comment and where the core's suppression parser looks
(any line of the finding's range): never after a backslash continuation or inside a multi-line
string, where it would break the code or change a string. The tokenizer says which lines can
end in a comment.
"""

from __future__ import annotations

import io
import re
import tokenize

from nnprobe.core.finding import Edit, Range
from nnprobe.core.lines import split_lines

_IGNORE = re.compile(r"#\s*nnprobe:\s*ignore\b(?!-)(\[([^\]]*)\])?", re.IGNORECASE)


def comment_text(code: str) -> str:
    return f"  # nnprobe: ignore[{code}]"


def _layout(text: str) -> tuple[set[int], dict[int, tuple[int, str]]]:
    """1-based rows that may end in a comment, and each row's comment (column, text)."""
    ends: set[int] = set()
    comments: dict[int, tuple[int, str]] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = (tok.start[1], tok.string)
                ends.add(tok.start[0])
            elif tok.type in (tokenize.NEWLINE, tokenize.NL):
                ends.add(tok.start[0])
    except (tokenize.TokenError, SyntaxError, IndentationError):
        # Source that does not tokenize (mid-edit): trust any line without a continuation.
        for number, line in enumerate(split_lines(text), start=1):
            if "#" in line:
                comments[number] = (line.index("#"), line[line.index("#") :])
            if not line.rstrip().endswith("\\"):
                ends.add(number)
    return ends, comments


def suppression_edit(text: str, first: int, last: int, code: str) -> Edit | None:
    """The edit suppressing `code` for a finding on 1-based lines first..last; None when no line
    of that range can carry a comment, or when an existing comment already covers it."""
    lines = split_lines(text)
    rows = range(first, min(last, len(lines)) + 1)
    ends, comments = _layout(text)
    for row in rows:
        match = _IGNORE.search(comments[row][1]) if row in comments else None
        if match is None:
            continue
        if match.group(1) is None:
            return None
        listed = match.group(2)
        if code in re.split(r"[\s,]+", listed.upper()):
            return None
        at = comments[row][0] + match.end(1)  # 1-based column of the closing bracket
        return Edit(Range.of(row, at, row, at), f", {code}" if listed.strip() else code)
    for row in rows:
        if row in ends:
            line = lines[row - 1]
            end = len(line.rstrip()) + 1
            return Edit(Range.of(row, end, row, len(line) + 1), comment_text(code))
    return None
