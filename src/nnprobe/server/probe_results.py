"""The last probe of each checkpoint, as the editor shows it beside the training script: hover
text for a layer's line and the one-line summary of a code lens above the model's class.

Plain data and formatting only (no protocol types), so the wording is unit-testable; the worker's
`inspect` result (nnprobe.probe.editor_job) is the input.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ProbeRecord:
    checkpoint: Path
    probed_at: float  # time.time()
    issues: int  # findings on the checkpoint
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    script: Path | None = None
    module_lines: dict[str, tuple[int, int]] = field(default_factory=dict)  # 1-based, inclusive
    model: dict[str, Any] | None = None  # {"name", "line" (1-based), "kind"}
    measured_on: str | None = None

    @classmethod
    def from_result(cls, checkpoint: Path, result: dict[str, Any], issues: int) -> ProbeRecord:
        script = result.get("script") or {}
        lines = {m: (int(v[0]), int(v[1])) for m, v in (script.get("modules") or {}).items()}
        return cls(
            checkpoint=checkpoint,
            probed_at=time.time(),
            issues=issues,
            modules=dict(result.get("modules") or {}),
            script=Path(script["path"]) if script.get("path") else None,
            module_lines=lines,
            model=script.get("model"),
            measured_on=result.get("measured_on"),
        )

    def module_at(self, line: int) -> str | None:
        """The innermost module whose constructor spans `line` (1-based) and has statistics."""
        found = [
            m
            for m, (start, end) in self.module_lines.items()
            if start <= line <= end and m in self.modules
        ]
        return max(found, key=lambda m: (m.count("."), len(m))) if found else None

    def shift_lines(self, line_of: Callable[[int], int]) -> bool:
        """Follow an edit of the script: `line_of` maps a 0-based old line to its new line.
        True when the model's line (where its code lens sits) moved."""
        self.module_lines = {
            m: (line_of(start - 1) + 1, line_of(end - 1) + 1)
            for m, (start, end) in self.module_lines.items()
        }
        if not self.model or "line" not in self.model:
            return False
        old = int(self.model["line"])
        self.model = {**self.model, "line": line_of(old - 1) + 1}
        return bool(self.model["line"] != old)

    def worst_dead(self) -> tuple[str, float] | None:
        dead = [(m, s["dead_fraction"]) for m, s in self.modules.items() if "dead_fraction" in s]
        return max(dead, key=lambda item: item[1]) if dead else None


def age(seconds: float) -> str:
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min ago"
    hours = minutes // 60
    return f"{hours} h ago" if hours < 48 else f"{hours // 24} days ago"


def lens_title(record: ProbeRecord, now: float | None = None) -> str:
    """The code lens summary: "3 issues · 41% dead in features.3 · probed 2 min ago"."""
    now = time.time() if now is None else now
    parts = [f"{record.issues} issue{'' if record.issues == 1 else 's'}"]
    worst = record.worst_dead()
    if worst is not None and worst[1] > 0:
        parts.append(f"{worst[1]:.0%} dead in {worst[0]}")
    parts.append(f"probed {age(now - record.probed_at)}")
    return " · ".join(parts)


_ROWS = (
    ("dead_fraction", "dead units", "{:.0%}"),
    ("mean", "activation mean", "{:.3g}"),
    ("std", "activation std", "{:.3g}"),
    ("saturated_fraction", "saturated", "{:.0%}"),
    ("grad_norm", "gradient norm", "{:.3g}"),
    ("update_ratio", "update/weight ratio", "{:.2g}"),
    ("nonfinite", "NaN/Inf values", "{}"),
)


def hover_markdown(
    record: ProbeRecord, module: str, root: Path | None = None, now: float | None = None
) -> str:
    """Markdown: the module's statistics from the last probe, where they came from and when."""
    now = time.time() if now is None else now
    stats = record.modules.get(module, {})
    kind = stats.get("kind")
    lines = [f"**nnprobe** · `{module}`" + (f" ({kind})" if kind else ""), ""]
    lines += ["| statistic | value |", "|---|---|"]
    for key, label, fmt in _ROWS:
        if key in stats and stats[key] is not None:
            lines.append(f"| {label} | {fmt.format(stats[key])} |")
    if "weight_std" in stats:
        weight = f"{stats['weight_std']:.3g}"
        if "reference_std" in stats:
            weight += f" (reference {stats['reference_std']:.3g}, {stats['reference']})"
        lines.append(f"| weight std | {weight} |")
    lines.append("")
    measured = f", on {record.measured_on}" if record.measured_on else ""
    lines.append(
        f"From `{_shown(record.checkpoint, root)}`, probed {age(now - record.probed_at)}{measured}."
    )
    return "\n".join(lines)


def _shown(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def newest_for(records: Iterable[ProbeRecord], script: Path) -> list[ProbeRecord]:
    """The records whose findings landed on `script`, newest first."""
    target = script.resolve()
    mine = [r for r in records if r.script is not None and r.script.resolve() == target]
    return sorted(mine, key=lambda r: r.probed_at, reverse=True)
