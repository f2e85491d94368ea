"""A hand-made report for the renderer tests.

Built from findings rather than from running rules, so the rendered output does not move when a rule
changes; NP990 is deliberately not a registered code.
"""

from __future__ import annotations

from nnprobe.core.engine import Report
from nnprobe.core.finding import (
    FILE_START,
    Confidence,
    Edit,
    Evidence,
    Finding,
    Fix,
    Range,
    Severity,
)

TRAIN_PY = """\
import torch
import torch.nn.functional as F


def step(model, x, y, optimizer):
    out = model(x)
    loss = F.cross_entropy(F.softmax(out, dim=1), y)
    loss.backward()
    optimizer.step(
"""

SOURCES = {"train.py": TRAIN_PY}


def read_source(path: str) -> str | None:
    return SOURCES.get(path)


def _span(line: int, needle: str) -> Range:
    text = TRAIN_PY.splitlines()[line - 1]
    column = text.index(needle) + 1
    return Range.of(line, column, line, column + len(needle))


SOFTMAX = _span(7, "F.softmax(out, dim=1)")


def sample_report() -> Report:
    findings = [
        Finding(
            code="NP990",
            name="sample-softmax",
            severity=Severity.WARNING,
            confidence=Confidence.MEDIUM,
            message="cross_entropy receives softmax probabilities; it expects logits",
            path="train.py",
            range=SOFTMAX,
            url="https://nnprobe.dev/rules/NP990",
            fix=Fix(
                message="pass the logits",
                edits=(Edit(SOFTMAX, "out"),),
            ),
        ),
        Finding(
            code="NP906",
            name="syntax-error",
            severity=Severity.ERROR,
            confidence=Confidence.HIGH,
            message="syntax error: '(' was never closed",
            path="train.py",
            range=_span(9, "("),
            evidence=Evidence.INSPECTION,
            url="https://nnprobe.dev/rules/NP906",
        ),
        Finding(
            code="NP907",
            name="internal-error",
            severity=Severity.INFO,
            confidence=Confidence.HIGH,
            message="rule NP104 (softmax-before-cross-entropy) crashed on this file",
            path="train.py",
            range=FILE_START,
            evidence=Evidence.INSPECTION,
            url="https://nnprobe.dev/rules/NP907",
        ),
        Finding(
            code="NP901",
            name="load-failed",
            severity=Severity.ERROR,
            confidence=Confidence.HIGH,
            message="could not read this file: truncated zip archive",
            path="checkpoints/model 1.pt",
            evidence=Evidence.INSPECTION,
            module="encoder.0",
            url="https://nnprobe.dev/rules/NP901",
        ),
    ]
    findings.sort(key=Finding.sort_key)
    return Report(findings=findings, files=3)
