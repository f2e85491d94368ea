"""Curve shapes the NP5xx rules look for, as plain functions over Series: where a loss stops being
finite, where a validation curve stalls, where it turns up while the training loss falls, how
often it swings, how fast it climbs. The rules turn these into findings; the curves picture
marks the same events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnprobe.logs.series import Series, normalize


@dataclass(frozen=True)
class Window:
    start: int  # index of the last good point before the stall (the best so far)
    end: int  # index of the last point of the stall


def first_blowup(series: Series, growth: float) -> tuple[int, int] | None:
    """(index of the first non-finite value or of the first value >= growth x the minimum so
    far, index of that minimum); None when the curve stays finite and bounded."""
    best_i: int | None = None
    for i, value in enumerate(series.values):
        if not math.isfinite(value):
            return i, best_i if best_i is not None else i
        if (
            best_i is not None
            and series.values[best_i] > 0
            and value >= growth * series.values[best_i]
        ):
            return i, best_i
        if best_i is None or value < series.values[best_i]:
            best_i = i
    return None


def finite_prefix(series: Series) -> int:
    """How many leading points are finite."""
    for i, value in enumerate(series.values):
        if not math.isfinite(value):
            return i
    return len(series.values)


def higher_is_better(series: Series) -> bool:
    return "loss" not in normalize(series.name)


def stalls(series: Series, patience: int, min_delta: float) -> list[Window]:
    """Maximal runs of >= patience evaluations none of which improves on the best before them by
    more than min_delta (relative)."""
    values = series.values[: finite_prefix(series)]
    sign = -1.0 if higher_is_better(series) else 1.0
    windows: list[Window] = []
    if not values:
        return windows
    best_i = 0
    for i in range(1, len(values) + 1):
        improved = i < len(values) and sign * values[i] < sign * values[best_i] - min_delta * abs(
            values[best_i]
        )
        if i == len(values) or improved:
            if i - 1 - best_i >= patience:
                windows.append(Window(best_i, i - 1))
            if i < len(values):
                best_i = i
    return windows


def values_between(series: Series, lo: float, hi: float) -> list[float]:
    return [v for i, v in enumerate(series.values) if lo <= series.x(i) <= hi]


def mean_at(series: Series, lo: float, hi: float) -> float | None:
    """The mean of `series` over (lo, hi], else its last value at or before hi."""
    inside = [v for i, v in enumerate(series.values) if lo < series.x(i) <= hi]
    if inside:
        return sum(inside) / len(inside)
    before = [v for i, v in enumerate(series.values) if series.x(i) <= hi]
    return before[-1] if before else None


def is_fraction(series: Series) -> bool:
    """An accuracy-like metric: higher is better and every value lies in [0, 1]."""
    return higher_is_better(series) and all(0.0 <= v <= 1.0 for v in series.values)
