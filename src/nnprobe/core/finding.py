"""The one result type every inspector produces and every front door renders.

Positions are 1-based lines and 1-based columns counted in Unicode code points; an end position is
exclusive (it names the character after the last one), as in SARIF. Adapters convert at the edge
(LSP wants 0-based UTF-16 offsets).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 3, "warning": 2, "info": 1}[self.value]


class Confidence(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Evidence(enum.StrEnum):
    """What a rule needs to see before it can speak (the bands of RULES.md)."""

    SOURCE = "source"
    WEIGHTS = "weights"
    ACTIVATIONS = "activations"
    GRADIENTS = "gradients"
    LOGS = "logs"
    INSPECTION = "inspection"


@dataclass(frozen=True, order=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True)
class Range:
    start: Position
    end: Position

    @classmethod
    def of(cls, line: int, column: int, end_line: int, end_column: int) -> Range:
        return cls(Position(line, column), Position(end_line, end_column))

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {
            "start": {"line": self.start.line, "column": self.start.column},
            "end": {"line": self.end.line, "column": self.end.column},
        }


FILE_START = Range.of(1, 1, 1, 1)


@dataclass(frozen=True)
class Edit:
    """Replace the text in `range` by `new_text` (an insertion when the range is empty)."""

    range: Range
    new_text: str

    def to_dict(self) -> dict[str, Any]:
        return {"range": self.range.to_dict(), "new_text": self.new_text}


@dataclass(frozen=True)
class Fix:
    message: str
    edits: tuple[Edit, ...]
    # "safe" keeps behaviour apart from the bug; "unsafe" may change results and wants a human look.
    applicability: str = "safe"

    def to_dict(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "applicability": self.applicability,
            "edits": [edit.to_dict() for edit in self.edits],
        }


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    confidence: Confidence
    message: str
    path: str
    range: Range = FILE_START
    evidence: Evidence = Evidence.SOURCE
    module: str | None = None
    url: str = ""
    fix: Fix | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def with_(self, **changes: Any) -> Finding:
        return replace(self, **changes)

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.range.start.line, self.range.start.column, self.code)

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape (schema version 1)."""
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "message": self.message,
            "path": self.path,
            "range": self.range.to_dict(),
            "evidence": self.evidence.value,
            "module": self.module,
            "url": self.url,
            "fix": self.fix.to_dict() if self.fix else None,
        }
