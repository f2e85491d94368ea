"""One curve per logged quantity, whichever writer produced it, and the roles the rules need
(training loss, validation loss, validation metric, learning rate) picked out by name.

Every point keeps its step, its epoch and the line of the file it came from when the format says
them, so a finding can name its evidence ("epochs 12-30") and sit on the log line it read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

EPOCH_NAMES = ("epoch", "epochs")
STEP_NAMES = ("step", "global_step", "steps", "iteration", "iter", "batch", "trainer/global_step")
ROLES = ("train-loss", "val-loss", "val-metric", "lr", "epoch", "step")

_VAL = re.compile(r"(^|[^a-z])(val|valid|validation|eval|test|dev)([^a-z]|$)")
_LOSS = re.compile(r"loss")
_METRIC = re.compile(r"(^|[^a-z])(acc|accuracy|f1|auc|top1|top_1|precision|recall|iou)([^a-z]|$)")
_LR = re.compile(r"^(lr|learning[_-]?rate)([^a-z]|$)|([^a-z])(lr|learning[_-]?rate)$")


def normalize(name: str) -> str:
    return name.strip().lower().replace("/", "_").replace(" ", "_")


@dataclass
class Series:
    name: str
    values: list[float] = field(default_factory=list)
    steps: list[int | None] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)
    lines: list[int | None] = field(default_factory=list)  # 1-based line in the file, if any

    def add(self, value: float, step: int | None, epoch: int | None, line: int | None) -> None:
        self.values.append(value)
        self.steps.append(step)
        self.epochs.append(epoch)
        self.lines.append(line)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def by_epoch(self) -> bool:
        """Every point has an epoch and no epoch repeats: one evaluation per epoch."""
        epochs = [e for e in self.epochs if e is not None]
        return len(epochs) == len(self.epochs) > 0 and len(set(epochs)) == len(epochs)

    def where(self, i: int) -> str:
        """How the log names point i: `epoch 12`, `step 340` or `record 5`."""
        if self.epochs[i] is not None and self.by_epoch:
            return f"epoch {self.epochs[i]}"
        if self.steps[i] is not None:
            return f"step {self.steps[i]}"
        if self.epochs[i] is not None:
            return f"epoch {self.epochs[i]}"
        return f"record {i + 1}"

    def span(self, i: int, j: int) -> str:
        """`epochs 12-30` for points i..j."""
        a, b = self.where(i), self.where(j)
        unit, _, first = a.partition(" ")
        unit2, _, last = b.partition(" ")
        if unit == unit2:
            return f"{unit}s {first}-{last}"
        return f"{a} to {b}"

    def x(self, i: int) -> float:
        """The point's position on a common axis: its step, else its epoch, else its index."""
        if self.steps[i] is not None:
            return float(self.steps[i])  # type: ignore[arg-type]
        if self.epochs[i] is not None:
            return float(self.epochs[i])  # type: ignore[arg-type]
        return float(i)

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in self.values)


@dataclass
class Run:
    """Every series of one log file, with the roles the rules read."""

    path: str
    series: dict[str, Series] = field(default_factory=dict)
    fmt: str = ""  # "csv", "jsonl", "tfevents"
    columns: Mapping[str, str] = field(default_factory=dict)  # role -> name, from the config

    def role(self, role: str) -> Series | None:
        name = self.role_name(role)
        return self.series.get(name) if name is not None else None

    def role_name(self, role: str) -> str | None:
        configured = self.columns.get(role)
        if configured is not None:
            return configured if configured in self.series else None
        candidates = [n for n in self.series if len(self.series[n]) > 0]
        return pick(role, candidates)

    @property
    def train_loss(self) -> Series | None:
        return self.role("train-loss")

    @property
    def val_loss(self) -> Series | None:
        return self.role("val-loss")

    @property
    def val_metric(self) -> Series | None:
        return self.role("val-metric")

    @property
    def lr(self) -> Series | None:
        return self.role("lr")

    def losses(self) -> list[Series]:
        return [s for name, s in self.series.items() if _LOSS.search(normalize(name)) and len(s)]


def role_of(name: str) -> str | None:
    """The role a column or tag name plays, by name alone."""
    n = normalize(name)
    if n in EPOCH_NAMES:
        return "epoch"
    if n in STEP_NAMES:
        return "step"
    if _LR.search(n) or n.startswith("lr-") or n.startswith("lr_"):
        return "lr"
    val = bool(_VAL.search(n))
    if _LOSS.search(n):
        return "val-loss" if val else "train-loss"
    if _METRIC.search(n):
        return "val-metric" if val else "train-metric"
    return None


def pick(role: str, names: list[str]) -> str | None:
    """The best name for a role: per-epoch aggregates over per-step ones (Lightning logs
    `train_loss_step` and `train_loss_epoch`), `train` spelled out over a bare `loss`."""
    matches = [n for n in names if role_of(n) == role]
    if not matches:
        return None

    def score(name: str) -> tuple[int, int, int]:
        n = normalize(name)
        return (
            1 if n.endswith("epoch") else 0,
            0 if n.endswith("step") else 1,
            -len(n),
        )

    return max(matches, key=score)


def is_log_header(names: list[str]) -> bool:
    """A table is a training log when it has an epoch or step column and a loss or metric one."""
    roles = {role_of(n) for n in names}
    has_axis = bool(roles & {"epoch", "step"})
    return has_axis and bool(roles & {"train-loss", "val-loss", "val-metric", "train-metric"})
