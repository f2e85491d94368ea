"""What `workspace/executeCommand` answers, as plain JSON a client renders without knowing our
types (docs/lsp.md is the contract; change both together).

    {"kind": "findings", "uri": ..., "version": 1, "findings": [...], "summary": {...}}
    {"kind": "image", "mime": "image/png", "data": <base64>, "title": ...}
    {"kind": "scatter", "points": [[x, y], ...], "labels": [...], "title": ...}
    {"kind": "unavailable", "reason": ...}

"unavailable" is an answer, not an error: the command exists, and the reason says what it needs
(the probe worker, a trusted workspace, a checkpoint) in words a user can act on.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from nnprobe.core.engine import Report
from nnprobe.report.json import to_dict


def findings(uri: str, report: Report) -> dict[str, Any]:
    """The CLI's JSON document (`nnprobe inspect --output-format json`) for one file."""
    return {"kind": "findings", "uri": uri, **to_dict(report)}


def unavailable(reason: str) -> dict[str, Any]:
    return {"kind": "unavailable", "reason": reason}


def image(png: bytes, title: str) -> dict[str, Any]:
    return {
        "kind": "image",
        "mime": "image/png",
        "data": base64.b64encode(png).decode("ascii"),
        "title": title,
    }


def scatter(
    points: Sequence[tuple[float, float]], labels: Sequence[str | int | None], title: str
) -> dict[str, Any]:
    if len(points) != len(labels):
        raise ValueError(f"{len(points)} points but {len(labels)} labels")
    return {
        "kind": "scatter",
        "points": [[float(x), float(y)] for x, y in points],
        "labels": list(labels),
        "title": title,
    }
