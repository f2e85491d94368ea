"""The machine format: findings exactly as `Finding.to_dict` shapes them, plus a summary.

The shape is versioned and described by `json_schema.json` beside this module; change either only
together, and bump `VERSION` for anything a consumer could trip on.
"""

from __future__ import annotations

import json
from typing import Any

from nnprobe.core.engine import Report
from nnprobe.core.finding import Severity

VERSION = 1


def to_dict(report: Report) -> dict[str, Any]:
    return {
        "version": VERSION,
        "findings": [finding.to_dict() for finding in report.findings],
        "summary": {
            "files": report.files,
            "errors": report.count(Severity.ERROR),
            "warnings": report.count(Severity.WARNING),
            "infos": report.count(Severity.INFO),
        },
    }


def render(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, ensure_ascii=False) + "\n"
