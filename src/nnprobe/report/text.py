"""The human format: one `path:line:col: CODE [severity] message` line per finding, the source line
with carets under the range, optional fix diffs, a statistics table, and a one-line summary."""

from __future__ import annotations

import difflib
import unicodedata
from collections import Counter
from collections.abc import Iterator

from nnprobe.core.engine import Report
from nnprobe.core.finding import FILE_START, Evidence, Finding, Fix, Severity
from nnprobe.report.source import (
    SourceCache,
    SourceReader,
    apply_edits,
    read_text_file,
    split_lines_keepends,
)

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_BLUE = "\x1b[34m"
_CYAN = "\x1b[36m"
_SEVERITY_COLOR = {Severity.ERROR: _RED, Severity.WARNING: _YELLOW, Severity.INFO: _CYAN}


class _Style:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *codes: str) -> str:
        if not self.enabled or not codes or not text:
            return text
        return "".join(codes) + text + _RESET


def render(
    report: Report,
    *,
    color: bool = False,
    show_fixes: bool = False,
    statistics: bool = False,
    quiet: bool = False,
    read_source: SourceReader = read_text_file,
) -> str:
    style = _Style(color)
    blocks: list[str] = []
    if statistics:
        table = _statistics(report.findings, style)
        if table:
            blocks.append(table)
    else:
        source = SourceCache(read_source)
        blocks.extend(_finding(f, source, style, show_fixes) for f in report.findings)
    if not quiet:
        blocks.append(style(summary(report), _BOLD))
    return "\n\n".join(blocks) + "\n" if blocks else ""


def summary(report: Report) -> str:
    files = _plural(report.files, "file")
    counts = [
        _plural(report.count(Severity.ERROR), "error"),
        _plural(report.count(Severity.WARNING), "warning"),
        # "info" is a mass noun: "3 info", as in "3 errors, 1 warning, 3 info".
        f"{report.count(Severity.INFO)} info",
    ]
    shown = [c for c in counts if not c.startswith("0 ")]
    if not shown:
        return f"No problems found in {files}."
    return f"{', '.join(shown)} in {files}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _finding(finding: Finding, source: SourceCache, style: _Style, show_fixes: bool) -> str:
    colour = _SEVERITY_COLOR[finding.severity]
    start = finding.range.start
    header = (
        f"{style(finding.path, _BOLD)}:{start.line}:{start.column}: "
        f"{style(finding.code, _BOLD, colour)} {style(f'[{finding.severity}]', colour)} "
        f"{finding.message}"
    )
    lines = [header, *_snippet(finding, source, style)]
    if show_fixes and finding.fix is not None:
        lines.extend(_fix(finding, finding.fix, source, style))
    return "\n".join(lines)


def _snippet(finding: Finding, source: SourceCache, style: _Style) -> Iterator[str]:
    start, end = finding.range.start, finding.range.end
    if finding.range == FILE_START and finding.evidence is not Evidence.SOURCE:
        return  # about the whole file (a checkpoint, a log): its first line would say nothing
    line = source.line(finding.path, start.line)
    if line is None:
        return
    line = _printable(line)
    first = start.column - 1
    last = end.column - 1 if end.line == start.line else len(line)
    width = max(_width(line[first:last]), 1)
    number = str(start.line)
    gutter = " " * len(number)
    bar = style("|", _BLUE, _BOLD)
    yield f"{gutter} {bar}"
    yield f"{style(number, _BLUE, _BOLD)} {bar} {line}".rstrip()
    carets = style("^" * width, _SEVERITY_COLOR[finding.severity], _BOLD)
    yield f"{gutter} {bar} {_indent(line[:first])}{carets}"


def _printable(line: str) -> str:
    """Control characters (an escape sequence in a string literal) would drive the terminal."""
    return "".join("?" if ch != "\t" and unicodedata.category(ch) == "Cc" else ch for ch in line)


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _width(text: str) -> int:
    return sum(_char_width(ch) for ch in text)


def _indent(prefix: str) -> str:
    """Blank space as wide on screen as `prefix`; tabs stay tabs so they expand the same way."""
    return "".join("\t" if ch == "\t" else " " * _char_width(ch) for ch in prefix)


def _fix(finding: Finding, fix: Fix, source: SourceCache, style: _Style) -> Iterator[str]:
    yield f"  = fix ({fix.applicability}): {fix.message}"
    text = source.text(finding.path)
    if text is None:
        yield "    (no preview: the file could not be read)"
        return
    before = split_lines_keepends(text)
    after = split_lines_keepends(apply_edits(text, fix.edits))
    diff = difflib.unified_diff(before, after, finding.path, finding.path, n=0)
    for row in diff:
        row = row.rstrip("\r\n")
        if row.startswith(("---", "+++")):
            yield "    " + style(row, _BOLD)
        elif row.startswith("@@"):
            yield "    " + style(row, _CYAN)
        elif row.startswith("-"):
            yield "    " + style(_printable(row), _RED)
        elif row.startswith("+"):
            yield "    " + style(_printable(row), _GREEN)
        else:
            yield "    " + _printable(row)


def _statistics(findings: list[Finding], style: _Style) -> str:
    counts = Counter(f.code for f in findings)
    if not counts:
        return ""
    names = {f.code: f.name for f in findings}
    fixable = {f.code for f in findings if f.fix is not None}
    width = len(str(max(counts.values())))
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    lines = []
    for code, count in rows:
        marker = "[*]" if code in fixable else "   "
        lines.append(f"{count:>{width}}\t{style(code, _BOLD)}\t{marker} {names[code]}")
    if fixable:
        lines.append("[*] a fix is available (see --show-fixes)")
    return "\n".join(lines)
