"""Findings to LSP diagnostics and edits: the one place the core's types meet lsprotocol's.

A diagnostic's `data` carries what code actions need, so any producer (the static linter here, the
runtime worker later) gets quick fixes by filling it the same way:

    {"name": "softmax-before-cross-entropy", "confidence": "high",
     "fix": {"title": "Remove the softmax", "applicability": "safe",
             "edits": [{"range": <LSP Range>, "newText": "logits"}]}}

"fix" is there only when the finding has one.

Findings on a file the editor does not have open are converted against the file on disk, read
as little as possible (`disk_index`): not at all when there is nothing to publish or the file is
a binary format (checkpoints, ONNX, TensorBoard records: everything on line 0), else streamed up
to the last line a finding names through the guarded opener (regular files in the workspace).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types

from nnprobe.core.finding import Confidence, Edit, Finding, Fix, Range, Severity
from nnprobe.core.reading import LIMITS, Unreadable
from nnprobe.server.positions import AtStart, FileLines, LineIndex, wanted_lines

SOURCE = "nnprobe"

SEVERITIES = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFO: types.DiagnosticSeverity.Information,
}


def lsp_range(range: Range, index: LineIndex) -> types.Range:
    start_line, start_char = index.to_lsp(range.start)
    end_line, end_char = index.to_lsp(range.end)
    if (end_line, end_char) < (start_line, start_char):
        end_line, end_char = start_line, start_char
    return types.Range(
        start=types.Position(line=start_line, character=start_char),
        end=types.Position(line=end_line, character=end_char),
    )


def range_dict(range: types.Range) -> dict[str, dict[str, int]]:
    return {
        "start": {"line": range.start.line, "character": range.start.character},
        "end": {"line": range.end.line, "character": range.end.character},
    }


def range_from_dict(value: Any) -> types.Range:
    start, end = value["start"], value["end"]
    return types.Range(
        start=types.Position(line=int(start["line"]), character=int(start["character"])),
        end=types.Position(line=int(end["line"]), character=int(end["character"])),
    )


def fix_title(fix: Fix) -> str:
    """The fix's message as a menu entry: capitalised, and marked when it wants a human look."""
    title = fix.message[:1].upper() + fix.message[1:]
    return f"{title} (unsafe)" if fix.applicability != "safe" else title


def edit_dict(edit: Edit, index: LineIndex) -> dict[str, Any]:
    return {"range": range_dict(lsp_range(edit.range, index)), "newText": edit.new_text}


def fix_data(fix: Fix, index: LineIndex) -> dict[str, Any]:
    return {
        "title": fix_title(fix),
        "applicability": fix.applicability,
        "edits": [edit_dict(edit, index) for edit in fix.edits],
    }


def message(finding: Finding) -> str:
    """The finding's message; a heuristic says so, since severity alone does not (RULES.md)."""
    if finding.confidence is Confidence.HIGH:
        return finding.message
    return f"{finding.message} ({finding.confidence.value} confidence)"


def to_diagnostic(finding: Finding, index: LineIndex) -> types.Diagnostic:
    data: dict[str, Any] = {"name": finding.name, "confidence": finding.confidence.value}
    if finding.fix is not None and finding.fix.edits:
        data["fix"] = fix_data(finding.fix, index)
    return types.Diagnostic(
        range=lsp_range(finding.range, index),
        message=message(finding),
        severity=SEVERITIES[finding.severity],
        code=finding.code,
        code_description=types.CodeDescription(href=finding.url) if finding.url else None,
        source=SOURCE,
        data=data,
    )


def to_diagnostics(
    findings: list[Finding], text: str | LineIndex, encoding: str
) -> list[types.Diagnostic]:
    index = text if isinstance(text, LineIndex) else LineIndex(text, encoding)
    return [to_diagnostic(finding, index) for finding in findings]


def has_lines(path: Path) -> bool:
    """False for the binary formats findings land on (positions there are line 0)."""
    from nnprobe.inspectors.checkpoint import CHECKPOINT_SUFFIXES
    from nnprobe.inspectors.training_logs import LOG_NAMES

    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return False
    return not any(fnmatch.fnmatch(path.name, pattern) for pattern in LOG_NAMES)


# The most of a text file read to place findings: the largest text kind the server publishes on.
SCAN_LIMIT = max(LIMITS["script"], LIMITS["notebook"], LIMITS["log"])


def disk_index(
    path: Path | None,
    findings: Sequence[Finding],
    encoding: str,
    roots: Iterable[Path] | None = None,
) -> LineIndex:
    """A LineIndex for `findings` on the file at `path`, reading only what they need; a file
    that cannot be read (a FIFO, a device, a link out of `roots`) puts them on line 0."""
    if path is None or not findings or not has_lines(path):
        return AtStart(encoding)
    ranges = [finding.range for finding in findings]
    for finding in findings:
        if finding.fix is not None:
            ranges.extend(edit.range for edit in finding.fix.edits)
    try:
        return FileLines(path, wanted_lines(ranges), encoding, limit=SCAN_LIMIT, roots=roots)
    except (Unreadable, OSError):
        return AtStart(encoding)


def text_edits(data: Any) -> list[types.TextEdit] | None:
    """The edits of a diagnostic's fix, or None when its data carries no well-formed fix."""
    if not isinstance(data, dict) or not isinstance(data.get("fix"), dict):
        return None
    try:
        return [
            types.TextEdit(range=range_from_dict(edit["range"]), new_text=str(edit["newText"]))
            for edit in data["fix"]["edits"]
        ]
    except (KeyError, TypeError, ValueError):
        return None
