"""What the NP3xx rules see: per-value activation statistics as plain Python numbers.

The probe engine (`nnprobe.probe`, which needs numpy, torch or onnxruntime) measures; this module
only describes the measurements, so the rules and their tests import nothing heavy and stay
mypy-strict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WEIGHT_KINDS = frozenset({"linear", "conv", "conv_transpose", "recurrent"})
NORM_KINDS = frozenset({"norm"})
RELU_KINDS = frozenset({"relu"})
SATURATING_KINDS = frozenset({"sigmoid", "tanh"})
ACTIVATION_KINDS = frozenset(
    {
        "relu",
        "leaky_relu",
        "sigmoid",
        "tanh",
        "softmax",
        "elu",
        "selu",
        "gelu",
        "softplus",
        "hardsigmoid",
        "hardswish",
        "prelu",
        "silu",
        "mish",
    }
)


@dataclass(frozen=True)
class ValueSummary:
    """Statistics of one intermediate value over the whole probe set.

    `name` is the ONNX value name (ONNX Runtime) or `module#call` (eager hooks); `module` is the
    module path that produces it ("" for the top-level module's own forward); `kind` is a
    normalised layer kind shared by both back ends (linear, conv, norm, recurrent, relu, sigmoid,
    tanh, ...); `layer` is the module path of the nearest weight layer feeding it; `source` the
    name of the nearest measured value feeding it (None: the model input).
    """

    name: str
    module: str
    kind: str
    op: str
    order: int
    count: int
    mean: float
    std: float
    min: float
    max: float
    nan: int = 0
    inf: int = 0
    beyond_fp16: int = 0
    layer: str | None = None
    source: str | None = None
    is_output: bool = False
    units: int = 0
    # Each unit's (channel's, for conv) maximum over every sample and position.
    unit_max: tuple[float, ...] | None = None
    # Fraction of all entries > 0.
    active_fraction: float | None = None
    # Sigmoid/tanh outputs: fraction within the margin of an asymptote, and fraction whose
    # pre-activation lay beyond the threshold (recovered from the output, the function being
    # monotone).
    saturated_fraction: float | None = None
    preactivation_beyond: float | None = None
    # Early conv feature maps: per-channel Pearson correlation with the (resized) input image.
    input_correlation: tuple[float, ...] | None = None

    @property
    def nonfinite(self) -> int:
        return self.nan + self.inf

    @property
    def dead_units(self) -> int:
        """Units never positive over the probe set."""
        if self.unit_max is None:
            return 0
        return sum(1 for m in self.unit_max if m <= 0.0)

    @property
    def dead_fraction(self) -> float:
        if not self.unit_max:
            return 0.0
        return self.dead_units / len(self.unit_max)


@dataclass(frozen=True)
class InputSummary:
    """The probe inputs: how many, their per-sample shape and overall statistics."""

    samples: int
    shape: tuple[int, ...]
    mean: float
    std: float
    min: float
    max: float
    synthetic: bool
    integer: bool = False
    nonfinite: int = 0

    @property
    def image_like(self) -> bool:
        """(C, H, W) with 1, 3 or 4 channels and a spatial size of at least 8x8."""
        return (
            len(self.shape) == 3
            and self.shape[0] in (1, 3, 4)
            and self.shape[1] >= 8
            and self.shape[2] >= 8
        )


@dataclass(frozen=True)
class ActivationContext:
    """Everything an NP3xx rule may look at for one model.

    `path` is the display path findings are reported on (the model or checkpoint file);
    `measured_on` reads like "64 synthetic inputs" or "500 inputs from digits.npz" and goes into
    every message; `backend` is "onnxruntime" or "eager".
    """

    path: str
    values: tuple[ValueSummary, ...]
    input: InputSummary
    measured_on: str
    backend: str = "onnxruntime"
    labels: int | None = None
    data: dict[str, object] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.input.synthetic

    def by_name(self) -> dict[str, ValueSummary]:
        return {v.name: v for v in self.values}

    def of_kind(self, *kinds: str) -> list[ValueSummary]:
        return [v for v in self.values if v.kind in kinds]

    @property
    def is_conv_net(self) -> bool:
        return any(v.kind in ("conv", "conv_transpose") for v in self.values)
