"""What the NP4xx rules see: per-layer gradient statistics and a short loss trajectory, as plain
Python numbers.

The measuring (a deep copy of the model, a loss, real torch optimizer steps) happens in
`nnprobe.probe.gradients`; this module only describes the measurements, so the rules and their
tests import nothing heavy and stay mypy-strict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_OPTIMIZER_NOTE = "defaults: no optimizer found"


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimizer a training script uses (or the defaults when none was found).

    `kind` is a torch.optim class name (SGD, Adam, AdamW, RMSprop, ...); settings a class does not
    take (momentum for Adam, betas for SGD) are ignored when it is built.
    """

    kind: str = "SGD"
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] | None = None
    nesterov: bool = False

    def describe(self) -> str:
        """`SGD lr 0.3` or `SGD lr 0.1 momentum 0.9 weight_decay 0.0005`."""
        parts = [f"{self.kind} lr {self.lr:g}"]
        if self.momentum:
            parts.append(f"momentum {self.momentum:g}")
        if self.weight_decay:
            parts.append(f"weight_decay {self.weight_decay:g}")
        if self.betas is not None:
            parts.append(f"betas ({self.betas[0]:g}, {self.betas[1]:g})")
        return " ".join(parts)


@dataclass(frozen=True)
class LayerGradient:
    """The gradient of one weight layer's weights at the given parameters (the first backward).

    `module` is the module path (`features.3`); `kind` the normalised layer kind (linear, conv,
    recurrent, ...); `order` its position among the weight layers in registration order;
    `grad_norm` and `weight_norm` are L2 norms over the layer's weight tensors (biases excluded);
    `zero_fraction` the share of gradient entries that are exactly 0.0; `update_ratio` the norm
    of the optimizer's first update divided by `weight_norm` (None when the weights are all zero);
    `nonfinite` counts NaN/Inf gradient entries; `reached` is False for a layer the loss does
    not depend on (never called in forward, or cut off by a detach), whose gradient is None.
    """

    module: str
    kind: str
    order: int
    entries: int
    grad_norm: float
    weight_norm: float
    zero_fraction: float
    update_ratio: float | None
    nonfinite: int = 0
    reached: bool = True


@dataclass(frozen=True)
class GradientContext:
    """Everything an NP4xx rule may look at for one model.

    `losses` holds the loss before each optimizer step and after the last one (steps + 1 values
    when no step was cut short; the run stops at the first non-finite loss); `measured_on` reads
    like "353 probe inputs with given labels" or "64 synthetic inputs with synthetic labels";
    `optimizer_note` says where the optimizer settings came from ("train.py:52", "defaults: no
    optimizer found").
    """

    path: str
    layers: tuple[LayerGradient, ...]
    losses: tuple[float, ...]
    steps: int
    loss: str
    optimizer: OptimizerSettings
    optimizer_note: str
    measured_on: str
    synthetic_inputs: bool = False
    synthetic_labels: bool = False
    data: dict[str, object] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.synthetic_inputs or self.synthetic_labels

    @property
    def initial_loss(self) -> float | None:
        return self.losses[0] if self.losses else None

    @property
    def loss_finite_at_start(self) -> bool:
        return bool(self.losses) and math.isfinite(self.losses[0])

    def first_nonfinite_step(self) -> int | None:
        """The index into `losses` of the first NaN/Inf loss, else None."""
        for index, value in enumerate(self.losses):
            if not math.isfinite(value):
                return index
        return None

    def ordered_layers(self) -> list[LayerGradient]:
        return sorted(self.layers, key=lambda layer: layer.order)
