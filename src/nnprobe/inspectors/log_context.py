"""What the NP5xx rules see: one training log read into curves, and, when the training script
that writes it is known, the lines a finding should also land on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnprobe.logs.script import ScriptAnchors
    from nnprobe.logs.series import Run


@dataclass
class LogContext:
    run: Run
    path: str  # the log as the report names it
    anchors: ScriptAnchors | None = None
