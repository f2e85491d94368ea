"""GitHub Actions workflow commands: each finding becomes an annotation on the pull request's diff.

Escaping follows @actions/core (`escapeData`, `escapeProperty` in its command.ts): in the message
`%`, `\\r` and `\\n`; in a property value also `:` and `,`, which would otherwise end the value.
"""

from __future__ import annotations

from nnprobe.core.engine import Report
from nnprobe.core.finding import Finding, Severity

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(finding: Finding) -> str:
    start, end = finding.range.start, finding.range.end
    properties = [("file", finding.path), ("line", str(start.line))]
    # Annotations take columns only within one line; GitHub drops or rejects them otherwise.
    if start.line == end.line:
        properties.append(("col", str(start.column)))
    properties.append(("endLine", str(end.line)))
    if start.line == end.line:
        properties.append(("endColumn", str(end.column)))
    properties.append(("title", f"nnprobe ({finding.code})"))
    joined = ",".join(f"{key}={escape_property(value)}" for key, value in properties)
    return f"::{COMMANDS[finding.severity]} {joined}::{escape_data(finding.message)}"


def render(report: Report) -> str:
    return "".join(annotation(finding) + "\n" for finding in report.findings)
