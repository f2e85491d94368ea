"""The training curves of one log as a PNG, with what the NP5xx rules found marked on them:
plateau and overfitting windows shaded, the divergence or NaN step drawn as a red line, the
swings of an oscillating curve dotted. For `nnprobe curves`, the editor panel and the report.

matplotlib (the `viz` extra) is imported here only, and with the Agg backend, so nothing opens a
window and nothing else pays for it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nnprobe.core.config import Config
from nnprobe.core.files import Target
from nnprobe.core.finding import Finding
from nnprobe.logs.series import Run, Series

INSTALL_HINT = "pip install 'nnprobe[viz]'"
_COLOURS = {
    "NP501": "#d62728",
    "NP502": "#ff7f0e",
    "NP503": "#9467bd",
    "NP504": "#8c564b",
    "NP505": "#7f7f7f",
}


def analyse(path: Path, config: Config) -> tuple[Run, list[Finding]]:
    """The log's curves and its NP5xx findings (on the log only). Raises NotALog, OSError."""
    from nnprobe.inspectors.training_logs import findings_for, log_context

    target = Target(path, path.as_posix(), explicit=True)
    ctx = log_context(target, config)
    ctx.anchors = None
    return ctx.run, findings_for(ctx, config, path)


def render(run: Run, findings: Iterable[Finding], title: str) -> bytes:
    """PNG bytes. Raises ImportError naming the extra when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"drawing curves needs matplotlib: {INSTALL_HINT}") from exc

    losses = [s for s in (run.train_loss, run.val_loss) if s is not None]
    metric = run.val_metric or run.role("train-metric")
    panels: list[tuple[str, list[Series]]] = [("loss", losses or run.losses()[:2])]
    if metric is not None:
        panels.append((metric.name, [metric]))
    if run.lr is not None:
        panels.append(("learning rate", [run.lr]))
    events = [f.data.get("event") for f in findings]
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.6 * len(panels) + 0.6), sharex=True)
    axes = list(axes) if len(panels) > 1 else [axes]
    for ax, (label, curves) in zip(axes, panels, strict=True):
        bad = [x for series in curves if (x := _plot(ax, series)) is not None]
        if bad:
            ax.axvline(min(bad), color="#d62728", linestyle="--", linewidth=1.2)
            ax.annotate(
                " NaN/Inf from here",
                (min(bad), 0.95),
                xycoords=("data", "axes fraction"),
                color="#d62728",
                fontsize=8,
                ha="left",
                va="top",
            )
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        if label == "loss" and _spans_decades(curves):
            ax.set_yscale("log")
        for event in events:
            if isinstance(event, dict):
                _mark(ax, event)
        if ax.get_yscale() == "linear":
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")
        # Events are named once, in the first panel's legend; the others name their curves.
        labelled = [
            (h, n)
            for h, n in zip(*ax.get_legend_handles_labels(), strict=True)
            if ax is axes[0] or not n.startswith("NP5")
        ]
        if labelled:
            unique = {n: h for h, n in labelled}
            ax.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
    axes[-1].set_xlabel(_axis_label(run))
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _plot(ax: Any, series: Series) -> float | None:
    """Draw one curve; the x of its first non-finite value, if any."""
    xs = [series.x(i) for i in range(len(series))]
    ys = [v if math.isfinite(v) else float("nan") for v in series.values]
    marker = "o" if len(xs) <= 60 else None
    ax.plot(xs, ys, label=series.name, marker=marker, markersize=3, linewidth=1.3)
    bad = [x for x, v in zip(xs, series.values, strict=True) if not math.isfinite(v)]
    return bad[0] if bad else None


def _mark(ax: Any, event: dict[str, Any]) -> None:
    code = str(event.get("code", ""))
    colour = _COLOURS.get(code, "#1f77b4")
    kind = event.get("kind")
    if kind == "window":
        ax.axvspan(event["x0"], event["x1"], color=colour, alpha=0.15, label=_legend(code))
    elif kind == "point":
        ax.axvline(event["x"], color=colour, linewidth=1.5, label=_legend(code))
    elif kind == "points":
        for x in event["xs"]:
            ax.axvline(x, color=colour, linewidth=0.8, linestyle=":", label=_legend(code))


def _legend(code: str) -> str:
    from nnprobe.core.registry import get_rule

    rule = get_rule(code)
    return f"{code} {rule.name}" if rule is not None else code


def _spans_decades(curves: list[Series]) -> bool:
    values = [v for s in curves for v in s.values if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 100


def _axis_label(run: Run) -> str:
    series = run.val_loss or run.train_loss
    if series is not None and series.steps and series.steps[0] is not None:
        return "step"
    return "epoch"


def curves_png(path: Path, config: Config) -> tuple[bytes, str]:
    """(PNG, title) for a log file."""
    run, findings = analyse(path, config)
    codes = ", ".join(sorted({f.code for f in findings})) or "no NP5xx findings"
    return render(run, findings, f"{path.name}: {codes}"), f"Training curves of {path.name}"
