"""Streaming statistics of one intermediate value, merged across sub-batches.

A probe never keeps activations: each sub-batch is reduced to counts, sums and extremes here and
then dropped, so memory is bounded by the sub-batch size. Mean and variance merge with Chan et al.'s
parallel update (count, mean, M2), which stays accurate where a running sum of squares would cancel.
Both back ends (ONNX Runtime outputs, eager forward hooks) feed the same accumulator, so their
numbers are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnprobe.inspectors.activation_context import (
    ACTIVATION_KINDS,
    SATURATING_KINDS,
    ValueSummary,
)

FP16_MAX = 65504.0
_ALWAYS_POSITIVE = frozenset({"sigmoid", "softmax", "softplus", "hardsigmoid"})


@dataclass(frozen=True)
class StatsSpec:
    """What to measure beyond the basics; thresholds come from the NP3xx rules' options."""

    preactivation_threshold: float = 5.0  # NP302: |pre-activation| beyond this is saturated
    asymptote_margin: float = 0.01  # NP302: outputs this close to an asymptote are saturated

    def saturation_bounds(self, kind: str) -> tuple[float, float, float, float] | None:
        """(low, high) output bounds for pre-activation saturation, then the asymptote bounds."""
        t = self.preactivation_threshold
        m = self.asymptote_margin
        if kind == "sigmoid":
            low, high = 1.0 / (1.0 + math.exp(t)), 1.0 / (1.0 + math.exp(-t))
            return low, high, m, 1.0 - m
        if kind == "tanh":
            return -math.tanh(t), math.tanh(t), -1.0 + m, 1.0 - m
        return None


def unit_axis(mode: str, ndim: int) -> int:
    """The axis whose entries are a value's units: "channel" (axis 1), "last", or "auto" (by
    rank: channels for (N, C), (N, C, H, W) and (N, C, D, H, W), the last axis otherwise)."""
    if ndim < 2:
        return ndim - 1
    if mode == "channel":
        return 1
    if mode == "last":
        return ndim - 1
    return 1 if ndim in (2, 4, 5) else ndim - 1


def correlation_sums(
    image: np.ndarray[Any, Any],
    sum_a: np.ndarray[Any, Any],
    sum_aa: np.ndarray[Any, Any],
    sum_ab: np.ndarray[Any, Any],
) -> np.ndarray[Any, Any]:
    """Per channel: n, Σa, Σb, Σa², Σb², Σab, from a feature map's per-channel sums and the
    resized input image `image` (b) they were taken against."""
    c = sum_a.shape[0]
    b = image.astype(np.float64).ravel()
    return np.stack(
        [
            np.full(c, float(b.size)),
            np.asarray(sum_a, dtype=np.float64),
            np.full(c, float(b.sum())),
            np.asarray(sum_aa, dtype=np.float64),
            np.full(c, float(np.dot(b, b))),
            np.asarray(sum_ab, dtype=np.float64),
        ]
    )


@dataclass
class BatchStats:
    """One sub-batch of one value, reduced: what ValueStats.merge folds into its running state.
    Moments are over finite entries only; `unit_max` and `corr` are per unit / per channel."""

    samples: int
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    nan: int = 0
    inf: int = 0
    beyond_fp16: int = 0
    positive: int = 0
    unit_max: np.ndarray[Any, Any] | None = None
    beyond: int = 0
    saturated: int = 0
    corr: np.ndarray[Any, Any] | None = None


class ValueStats:
    """Accumulates one value's statistics; `update` once per sub-batch (or per hook call)."""

    def __init__(
        self,
        kind: str,
        *,
        unit_axis: str = "auto",
        spec: StatsSpec | None = None,
        correlate_input: bool = False,
    ) -> None:
        self.kind = kind
        self.unit_axis = unit_axis  # "channel" (axis 1), "last", or "auto" (decided by rank)
        # Always-positive activations have nothing to say about units that never fire.
        self.per_unit = kind in ACTIVATION_KINDS and kind not in _ALWAYS_POSITIVE
        self.bounds = (spec or StatsSpec()).saturation_bounds(kind)
        self.correlate_input = correlate_input and kind not in SATURATING_KINDS
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.nan = 0
        self.inf = 0
        self.beyond_fp16 = 0
        self.samples = 0
        self.positive = 0
        self.unit_max: np.ndarray[Any, Any] | None = None
        self.beyond = 0
        self.saturated = 0
        self.corr: np.ndarray[Any, Any] | None = None  # per channel: n, Σa, Σb, Σa², Σb², Σab

    def reduce(
        self, x: np.ndarray[Any, Any], image: np.ndarray[Any, Any] | None = None
    ) -> BatchStats | None:
        """One sub-batch's statistics computed in numpy from the full value (the eager back end,
        and the ONNX Runtime one where a value holds NaN/Inf or overflows fp16)."""
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if x.size == 0:
            return None
        flat = x.reshape(-1)
        total = float(flat.sum(dtype=np.float64))
        batch = BatchStats(samples=x.shape[0] if x.ndim else 1)
        if not math.isfinite(total):
            finite = np.isfinite(flat)
            batch.nan = int(np.isnan(flat).sum())
            batch.inf = int(flat.size - finite.sum()) - batch.nan
            clean = np.where(finite.reshape(x.shape), x, np.float32(0.0))
            kept = flat[finite]
        else:
            clean, kept = x, flat
        batch.n = int(kept.size)
        if batch.n:
            batch.mean = float(kept.sum(dtype=np.float64)) / batch.n
            d = kept - np.float32(batch.mean)
            batch.m2 = float(np.dot(d, d))
            batch.min, batch.max = float(kept.min()), float(kept.max())
            if batch.max > FP16_MAX or batch.min < -FP16_MAX:
                batch.beyond_fp16 = int(np.count_nonzero(np.abs(kept) > FP16_MAX))
        if self.per_unit and clean.ndim >= 1:
            # A unit is dead when its maximum over the probe set is <= 0; maxima reduce fast
            # along contiguous axes, where a per-unit count of positives would not.
            axis = unit_axis(self.unit_axis, clean.ndim)
            units = clean.shape[axis]
            lead = int(np.prod(clean.shape[:axis], dtype=np.int64))
            grouped = clean.reshape(lead, units, -1)
            if grouped.size:
                batch.unit_max = grouped.max(axis=2).max(axis=0).astype(np.float64)
            batch.positive = int(np.count_nonzero(clean > 0))
        if self.bounds is not None:
            low, high, a_low, a_high = self.bounds
            batch.beyond = int(np.count_nonzero((kept <= low) | (kept >= high)))
            batch.saturated = int(np.count_nonzero((kept <= a_low) | (kept >= a_high)))
        if self.correlate_input and image is not None and clean.ndim == 4:
            batch.corr = self._correlate(clean, image)
        return batch

    def update(self, x: np.ndarray[Any, Any], image: np.ndarray[Any, Any] | None = None) -> None:
        batch = self.reduce(x, image)
        if batch is not None:
            self.merge(batch)

    def merge(self, batch: BatchStats) -> None:
        """Fold one sub-batch in: Chan's parallel update for the moments, sums and extremes for
        the rest."""
        self.samples += batch.samples
        self.nan += batch.nan
        self.inf += batch.inf
        self.beyond_fp16 += batch.beyond_fp16
        if batch.n:
            self.min, self.max = min(self.min, batch.min), max(self.max, batch.max)
            n_a = self.n
            n = n_a + batch.n
            delta = batch.mean - self.mean
            self.mean += delta * batch.n / n
            self.m2 += batch.m2 + delta * delta * n_a * batch.n / n
            self.n = n
        if self.per_unit:
            self.positive += batch.positive
            if batch.unit_max is not None:
                if self.unit_max is None:
                    self.unit_max = batch.unit_max.astype(np.float64)
                elif self.unit_max.shape == batch.unit_max.shape:
                    np.maximum(self.unit_max, batch.unit_max, out=self.unit_max)
        if self.bounds is not None:
            self.beyond += batch.beyond
            self.saturated += batch.saturated
        if self.correlate_input and batch.corr is not None:
            if self.corr is None:
                self.corr = batch.corr.astype(np.float64)
            elif self.corr.shape == batch.corr.shape:
                self.corr += batch.corr

    def _correlate(
        self, fmap: np.ndarray[Any, Any], image: np.ndarray[Any, Any]
    ) -> np.ndarray[Any, Any] | None:
        """Per-channel sums for the Pearson correlation of a feature map with the input."""
        if image.ndim != 4 or image.shape[0] != fmap.shape[0]:
            return None
        n, c = fmap.shape[0], fmap.shape[1]
        b = resize_mean_image(image, fmap.shape[2], fmap.shape[3]).reshape(n, -1, 1)
        a = fmap.reshape(n, c, -1)
        ab = np.matmul(a, b).sum(axis=(0, 2), dtype=np.float64)  # BLAS, per channel
        return correlation_sums(
            b,
            a.sum(axis=(0, 2), dtype=np.float64),
            np.einsum("ncp,ncp->c", a, a, dtype=np.float64),
            ab,
        )

    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0

    def summary(
        self,
        *,
        name: str,
        module: str,
        op: str,
        order: int,
        layer: str | None = None,
        source: str | None = None,
        is_output: bool = False,
    ) -> ValueSummary:
        unit_max: tuple[float, ...] | None = None
        units = 0
        if self.unit_max is not None:
            units = int(self.unit_max.shape[0])
            unit_max = tuple(self.unit_max.astype(float).tolist())  # 10x a float() per unit
        entries = self.n + self.nan + self.inf
        active = self.positive / entries if self.per_unit and entries else None
        saturated = beyond = None
        if self.bounds is not None and self.n:
            saturated, beyond = self.saturated / self.n, self.beyond / self.n
        return ValueSummary(
            name=name,
            module=module,
            kind=self.kind,
            op=op,
            order=order,
            count=self.n,
            mean=self.mean if self.n else math.nan,
            std=self.std() if self.n else math.nan,
            min=self.min if self.n else math.nan,
            max=self.max if self.n else math.nan,
            nan=self.nan,
            inf=self.inf,
            beyond_fp16=self.beyond_fp16,
            layer=layer,
            source=source,
            is_output=is_output,
            units=units,
            unit_max=unit_max,
            active_fraction=active,
            saturated_fraction=saturated,
            preactivation_beyond=beyond,
            input_correlation=self._pearson(),
        )

    def _pearson(self) -> tuple[float, ...] | None:
        if self.corr is None:
            return None
        n, sa, sb, saa, sbb, sab = self.corr
        cov = sab / n - (sa / n) * (sb / n)
        var_a = np.maximum(saa / n - (sa / n) ** 2, 0.0)
        var_b = np.maximum(sbb / n - (sb / n) ** 2, 0.0)
        denom = np.sqrt(var_a * var_b)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.where(denom > 1e-12, cov / denom, 0.0)
        return tuple(float(v) for v in r)


def resize_mean_image(image: np.ndarray[Any, Any], h: int, w: int) -> np.ndarray[Any, Any]:
    """The channel mean of (N, C, H, W) images at (h, w): block means when the size divides
    evenly (a strided or pooled feature map), nearest samples otherwise."""
    gray = image.astype(np.float32).mean(axis=1)
    n, big_h, big_w = gray.shape
    if (big_h, big_w) == (h, w):
        return gray
    if big_h % h == 0 and big_w % w == 0:
        return gray.reshape(n, h, big_h // h, w, big_w // w).mean(axis=(2, 4))
    rows = np.minimum(((np.arange(h) + 0.5) * big_h / h).astype(int), big_h - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * big_w / w).astype(int), big_w - 1)
    return gray[:, rows][:, :, cols]


def input_summary_numbers(x: np.ndarray[Any, Any]) -> tuple[float, float, float, float, int]:
    """(mean, std, min, max) of the probe inputs over finite entries (NaN when none), and how
    many entries are not finite; read in slices, so no copy of the whole probe set is made."""
    stats = ValueStats("input")
    rows = max(1, (1 << 18) // max(1, int(np.prod(x.shape[1:], dtype=np.int64))))
    for start in range(0, x.shape[0], rows):
        stats.update(np.asarray(x[start : start + rows]))
    nonfinite = stats.nan + stats.inf
    if stats.n == 0:
        return math.nan, math.nan, math.nan, math.nan, nonfinite
    return stats.mean, stats.std(), stats.min, stats.max, nonfinite
