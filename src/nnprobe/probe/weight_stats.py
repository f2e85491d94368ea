"""The statistics the weight rules (NP2xx) compute, and where each definition and number is from.

- Reference variances of the init schemes (He, Glorot, LeCun) for the activation after a layer, and
  PyTorch's own default for Linear/Conv (kaiming_uniform with a = sqrt(5): uniform within
  +-1/sqrt(fan_in), variance 1/(3 fan_in)).
- A test for "still looks freshly initialised" (`init_signature`): the entries have the shape of an
  init distribution and the matrix has no structure. Measured on digits MLPs here: at init the
  excess kurtosis is -1.2 (uniform) or 0 +- 0.15 (normal), max|w| is 1.74 std (uniform) and the top
  singular value is 0.94-0.99 of the random-matrix edge std * (sqrt(m) + sqrt(n)); after one epoch
  of SGD (lr 0.05, momentum 0.9) the uniform ones reach max|w| 3.0 std and edge 1.16-1.26. Weights
  that have not moved off their init (same shape, edge <= 1.1) are judged as an init.
- Filter roughness (NP204): the lag-1 variogram over the filter's mean-removed variance, pooled over
  filters, `sum (a - b)^2 / (2 * pairs * sum var)`; white noise scores 1, smooth filters near 0.
- A power-law exponent for the eigenvalue spectrum of W^T W (NP207): Hill's maximum-likelihood
  estimator over the top eigenvalues, the tail start chosen by the Kolmogorov-Smirnov distance
  (Clauset, Shalizi & Newman 2009), as WeightWatcher fits it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Activations by the init scheme whose variance suits them; the F-test compares with the nearest.
_RECTIFIERS = frozenset({"relu", "relu6", "leaky_relu", "prelu", "rrelu"})
_SMOOTH_RECTIFIERS = frozenset({"elu", "celu", "gelu", "silu", "mish", "hardswish", "softplus"})
_SATURATING = frozenset({"tanh", "sigmoid", "hardsigmoid", "hardtanh", "softsign"})
_LINEAR = frozenset({"linear", "identity", "none", "softmax", "log_softmax", "softmin"})
TANH_GAIN = 5.0 / 3.0  # nn.init.calculate_gain("tanh")


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) as torch.nn.init computes them: dims 1 and 0 times the receptive field."""
    if len(shape) < 2:
        return (shape[0] if shape else 1), (shape[0] if shape else 1)
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def references(activation: str, fan_in: int, fan_out: int) -> dict[str, float]:
    """Reference variances ("He 2/fan_in": 0.03, ...) acceptable before `activation`; empty when
    the activation is not one whose init convention is settled."""
    he = ("He 2/fan_in", 2.0 / fan_in)
    lecun = ("LeCun 1/fan_in", 1.0 / fan_in)
    glorot = ("Glorot 2/(fan_in+fan_out)", 2.0 / (fan_in + fan_out))
    glorot_tanh = ("Glorot with tanh gain 5/3", TANH_GAIN**2 * 2.0 / (fan_in + fan_out))
    act = activation.lower()
    if act in _RECTIFIERS:
        chosen = [he]
    elif act in _SMOOTH_RECTIFIERS:
        chosen = [he, lecun]
    elif act == "tanh":
        chosen = [glorot, glorot_tanh, lecun]
    elif act in _SATURATING:
        chosen = [glorot, lecun]
    elif act == "selu":
        chosen = [lecun]
    elif act in _LINEAR:
        chosen = [glorot, lecun]
    else:
        chosen = []
    return dict(chosen)


def torch_default_like(weights: np.ndarray, fan_in: int) -> bool:
    """True when the weights are PyTorch's untouched Linear/Conv default: uniform within
    +-1/sqrt(fan_in), variance within 25% of 1/(3 fan_in) (more on small layers, whose sample
    variance spreads: 4 standard errors, sqrt(0.8/n) relative for a uniform)."""
    if weights.size < 16 or fan_in <= 0:
        return False
    bound = 1.0 / math.sqrt(fan_in)
    expected = 1.0 / (3.0 * fan_in)
    tolerance = max(0.25, 4 * math.sqrt(0.8 / weights.size))
    w = weights.astype(np.float64, copy=False)
    return bool(np.abs(w).max() <= bound * (1 + 1e-6) and abs(w.var() / expected - 1) <= tolerance)


@dataclass(frozen=True)
class InitSignature:
    """How much a weight tensor still looks like a fresh init, and the numbers behind it."""

    fresh: bool
    family: str  # "uniform", "normal", "truncated normal" or "none"
    kurtosis: float  # excess kurtosis
    max_over_std: float
    edge_ratio: float | None  # top singular value / (std * (sqrt(m) + sqrt(n))); None: too small

    def describe(self) -> str:
        edge = (
            f", top singular value {self.edge_ratio:.2f}x the random-matrix edge"
            if (self.edge_ratio is not None)
            else ""
        )
        return f"{self.family} entries, excess kurtosis {self.kurtosis:.2f}{edge}"


def top_singular_value(matrix: np.ndarray, iterations: int = 60) -> float:
    """Largest singular value by power iteration on the smaller Gram side (exact SVD when small)."""
    m, n = matrix.shape
    if min(m, n) <= 256:
        return float(np.linalg.svd(matrix, compute_uv=False)[0])
    a = matrix if m <= n else matrix.T
    rng = np.random.default_rng(0)
    v = rng.standard_normal(a.shape[0])
    sigma = 0.0
    for _ in range(iterations):
        u = a @ (a.T @ v)
        norm = float(np.linalg.norm(u))
        if norm == 0.0:
            return 0.0
        v = u / norm
        sigma = math.sqrt(norm)
    return sigma


def init_signature(weights: np.ndarray, edge_max: float = 1.1) -> InitSignature:
    w = weights.astype(np.float64, copy=False).reshape(weights.shape[0], -1)
    flat = w.ravel()
    n = flat.size
    std = float(flat.std())
    if n < 16 or std == 0.0 or not np.isfinite(std):
        return InitSignature(False, "none", float("nan"), float("nan"), None)
    centred = flat - flat.mean()
    kurtosis = float(np.mean(centred**4) / std**4 - 3.0)
    max_over_std = float(np.abs(centred).max() / std)
    mean_ok = abs(float(flat.mean())) <= 0.1 * std + 4 * std / math.sqrt(n)
    # Sampling spread of the excess kurtosis of n normal draws is sqrt(24/n).
    tolerance = max(0.3, 4 * math.sqrt(24.0 / n))
    extreme = math.sqrt(2 * math.log(2 * n)) + 1.0
    # A uniform's excess kurtosis is -1.2; its 0.1% quantile is -1.50 at n = 72, -1.25 at 4096.
    # Two-point (+-c) weights reach -2: bounded too, but no init draws them.
    uniform_low = -1.2 - max(0.2, 3 / math.sqrt(n))
    if max_over_std <= math.sqrt(3) * 1.05 and uniform_low <= kurtosis <= -1.0:
        family = "uniform"
    elif abs(kurtosis) <= tolerance and max_over_std <= extreme:
        family = "normal"
    elif -1.0 < kurtosis < 0.0 and max_over_std <= 2.6:
        family = "truncated normal"  # trunc_normal_ cut at 2 std: 2.27 std after truncation
    else:
        family = "none"
    edge: float | None = None
    if min(w.shape) >= 4:
        edge = top_singular_value(w) / (std * (math.sqrt(w.shape[0]) + math.sqrt(w.shape[1])))
    fresh = family != "none" and mean_ok and (edge is None or edge <= edge_max)
    return InitSignature(fresh, family, kurtosis, max_over_std, edge)


def roughness(weights: np.ndarray) -> tuple[float, int]:
    """(score, number of 2-D filter slices) for conv weights (out, in, kh, kw): the pooled lag-1
    variogram over twice the variance. White noise scores 1.0; a smooth ramp near 0."""
    kh, kw = weights.shape[-2], weights.shape[-1]
    w = weights.astype(np.float64, copy=False).reshape(-1, kh, kw)
    w = w - w.mean(axis=(1, 2), keepdims=True)
    energy = (w**2).sum(axis=(1, 2))
    keep = energy > 0
    w, energy = w[keep], energy[keep]
    if not len(w):
        return float("nan"), 0
    horizontal = ((w[:, :, 1:] - w[:, :, :-1]) ** 2).sum()
    vertical = ((w[:, 1:, :] - w[:, :-1, :]) ** 2).sum()
    pairs = kh * (kw - 1) + kw * (kh - 1)
    variance = energy.sum() / (kh * kw - 1)  # summed unbiased per-filter variances
    return float((horizontal + vertical) / pairs / (2 * variance)), len(w)


def spectrum(matrix: np.ndarray) -> np.ndarray:
    """Eigenvalues of W^T W (squared singular values), ascending."""
    m, n = matrix.shape
    a = matrix.astype(np.float64, copy=False)
    gram = a @ a.T if m <= n else a.T @ a
    return np.clip(np.linalg.eigvalsh(gram), 0.0, None)


@dataclass(frozen=True)
class PowerLawFit:
    alpha: float
    tail: int  # eigenvalues in the fitted tail
    xmin: float
    distance: float  # Kolmogorov-Smirnov distance of the fit over the tail


def power_law_alpha(eigenvalues: np.ndarray, min_tail: int = 10) -> PowerLawFit | None:
    """The density exponent alpha of p(x) ~ x^-alpha over the spectrum's tail.

    For each candidate tail (its top n eigenvalues, n from max(min_tail, 5%) to half of them), the
    Hill estimate alpha = 1 + n / sum(ln(x_i / x_min)); keep the one whose fitted CDF is closest to
    the empirical one (smallest KS distance)."""
    ev = np.sort(eigenvalues[eigenvalues > eigenvalues.max() * 1e-12]) if eigenvalues.size else ()
    count = len(ev)
    low = max(min_tail, math.ceil(0.05 * count))
    high = max(low, count // 2)
    if count < 2 * min_tail:
        return None
    logs = np.log(ev)
    best: PowerLawFit | None = None
    for n in range(low, high + 1):
        start = count - n
        spread = float(np.sum(logs[start:] - logs[start]))
        if spread <= 0:
            continue
        alpha = 1.0 + n / spread
        tail = ev[start:]
        fitted = 1.0 - (tail / ev[start]) ** (1.0 - alpha)
        distance = float(np.max(np.abs(np.arange(n) / n - fitted)))
        if best is None or distance < best.distance:
            best = PowerLawFit(alpha, n, float(ev[start]), distance)
    return best
