"""SARIF 2.1.0, the format GitHub code scanning and SARIF viewers read.

`tool.driver.rules` holds the rules that appear in the results, not every registered rule: the log
stays small, its bytes do not change when an unrelated rule is added, and code scanning only needs
the metadata of rules it has alerts for. Columns are Unicode code points (`columnKind` says so),
which is how findings count them.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import nnprobe
from nnprobe.core.docs import render_rule_page
from nnprobe.core.engine import Report
from nnprobe.core.finding import Finding, Fix, Range, Severity
from nnprobe.core.registry import get_rule
from nnprobe.core.rule import docs_url

SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
INFORMATION_URI = "https://nnprobe.dev"
SRCROOT = "%SRCROOT%"

LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
# GitHub code scanning ranks and filters alerts by `precision` and `problem.severity`.
_PROBLEM_SEVERITY = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "recommendation",
}


def render(report: Report, *, root: Path | None = None) -> str:
    """`root`, when given, is recorded as %SRCROOT% so viewers can resolve relative paths."""
    return json.dumps(to_dict(report, root=root), indent=2, ensure_ascii=False) + "\n"


def to_dict(report: Report, *, root: Path | None = None) -> dict[str, Any]:
    codes = sorted({f.code for f in report.findings})
    index = {code: i for i, code in enumerate(codes)}
    samples = {f.code: f for f in report.findings}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "nnprobe",
                "version": nnprobe.__version__,
                "semanticVersion": nnprobe.__version__,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(code, samples[code]) for code in codes],
            }
        },
        "invocations": [
            {
                "executionSuccessful": not report.missing,
                "toolExecutionNotifications": [
                    {"level": "error", "message": {"text": f"path does not exist: {path}"}}
                    for path in report.missing
                ],
            }
        ],
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index[f.code]) for f in report.findings],
    }
    if root is not None:
        run["originalUriBaseIds"] = {SRCROOT: {"uri": root.resolve().as_uri().rstrip("/") + "/"}}
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _rule(code: str, sample: Finding) -> dict[str, Any]:
    rule_cls = get_rule(code)
    if rule_cls is None:  # a finding from a rule this build does not know (a plugin, a test)
        return {
            "id": code,
            "name": sample.name,
            "shortDescription": {"text": sample.name},
            "helpUri": sample.url or docs_url(code),
        }
    sections = rule_cls.doc_sections()
    summary = rule_cls.summary() or rule_cls.name
    return {
        "id": rule_cls.code,
        "name": rule_cls.name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": _plain(sections.get("What it does", "")) or summary},
        "help": {
            "text": _plain(sections.get("How to fix", "")) or summary,
            "markdown": render_rule_page(rule_cls),
        },
        "helpUri": docs_url(rule_cls.code),
        "defaultConfiguration": {
            "level": LEVELS[rule_cls.severity],
            "enabled": rule_cls.enabled_by_default,
        },
        "properties": {
            "confidence": rule_cls.confidence.value,
            "evidence": rule_cls.evidence.value,
            "tags": [rule_cls.evidence.value],
            "precision": rule_cls.confidence.value,
            "problem.severity": _PROBLEM_SEVERITY[rule_cls.severity],
        },
    }


def _plain(markdown: str) -> str:
    """Docstring paragraphs unwrapped into lines; lists and code blocks keep their line breaks."""
    paragraphs = []
    for paragraph in markdown.split("\n\n"):
        lines = paragraph.splitlines()
        keep = any(line.lstrip().startswith(("```", "- ", "* ", "|")) for line in lines)
        paragraphs.append(paragraph if keep else " ".join(line.strip() for line in lines))
    return "\n\n".join(paragraphs).strip()


def artifact_location(path: str) -> dict[str, str]:
    """A relative path becomes a URI reference under %SRCROOT%; an absolute one a file: URI."""
    posix = PurePosixPath(Path(path).as_posix())
    if Path(path).is_absolute():
        return {"uri": Path(path).as_uri()}
    return {"uri": quote(posix.as_posix(), safe="/"), "uriBaseId": SRCROOT}


def region(range: Range) -> dict[str, int]:
    return {
        "startLine": range.start.line,
        "startColumn": range.start.column,
        "endLine": range.end.line,
        "endColumn": range.end.column,
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": LEVELS[finding.severity],
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": artifact_location(finding.path),
                    "region": region(finding.range),
                }
            }
        ],
        "properties": {"confidence": finding.confidence.value},
    }
    if finding.module is not None:
        result["locations"][0]["logicalLocations"] = [
            {"fullyQualifiedName": finding.module, "kind": "module"}
        ]
    if finding.fix is not None:
        result["fixes"] = [_fix(finding, finding.fix)]
    return result


def _fix(finding: Finding, fix: Fix) -> dict[str, Any]:
    return {
        "description": {"text": fix.message},
        "artifactChanges": [
            {
                "artifactLocation": artifact_location(finding.path),
                "replacements": [
                    {
                        "deletedRegion": region(edit.range),
                        "insertedContent": {"text": edit.new_text},
                    }
                    for edit in fix.edits
                ],
            }
        ],
        "properties": {"applicability": fix.applicability},
    }
