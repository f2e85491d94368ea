"""The loss and optimizer settings a gradient probe should use, and where they came from.

NP4xx rules judge gradients and a few optimizer steps "at the script's settings": the loss the
script trains with and its optimizer's lr, momentum and weight decay. They are read statically
from the training script (first optimizer constructed, first loss constructed or called), else
from what the checkpoint saved beside the weights, else defaults; `source` says which, and the
findings quote it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnprobe.inspectors.script.context import ScriptContext

DEFAULT_LOSS = "cross_entropy"
DEFAULT_OPTIMIZER = "SGD"
DEFAULT_LR = 0.01
_LOSSES = {
    "torch.nn.CrossEntropyLoss": "cross_entropy",
    "torch.nn.functional.cross_entropy": "cross_entropy",
    "torch.nn.NLLLoss": "nll",
    "torch.nn.functional.nll_loss": "nll",
    "torch.nn.MSELoss": "mse",
    "torch.nn.functional.mse_loss": "mse",
    "torch.nn.L1Loss": "l1",
    "torch.nn.functional.l1_loss": "l1",
    "torch.nn.BCEWithLogitsLoss": "bce_logits",
    "torch.nn.functional.binary_cross_entropy_with_logits": "bce_logits",
    "torch.nn.BCELoss": "bce",
    "torch.nn.functional.binary_cross_entropy": "bce",
    "torch.nn.SmoothL1Loss": "smooth_l1",
    "torch.nn.HuberLoss": "huber",
}


@dataclass
class TrainSettings:
    loss: str = DEFAULT_LOSS
    optimizer: str = DEFAULT_OPTIMIZER
    lr: float = DEFAULT_LR
    momentum: float = 0.0
    weight_decay: float = 0.0
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it came from

    def describe(self) -> str:
        """`SGD lr=0.3 (train.py:22), loss cross_entropy (default)`."""
        opt = f"{self.optimizer} lr={self.lr:g}"
        if self.momentum:
            opt += f" momentum={self.momentum:g}"
        if self.weight_decay:
            opt += f" weight_decay={self.weight_decay:g}"
        return (
            f"{opt} ({self.sources.get('optimizer', 'defaults')}), loss {self.loss} "
            f"({self.sources.get('loss', 'default')})"
        )

    @property
    def optimizer_note(self) -> str | None:
        """Where the optimizer settings came from (`train.py:22`); None for the defaults."""
        return self.sources.get("optimizer")

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "sources": dict(self.sources),
            "description": self.describe(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainSettings:
        keys = ("loss", "optimizer", "lr", "momentum", "weight_decay", "sources")
        return cls(**{k: data[k] for k in keys if k in data})


def train_settings(
    ctx: ScriptContext | None, script_name: str, metadata: dict[str, Any]
) -> TrainSettings:
    settings = TrainSettings()
    if ctx is not None and ctx.loops.optimizers:
        first = ctx.loops.optimizers[0]
        settings.optimizer = first.kind
        settings.sources["optimizer"] = f"{script_name}:{first.call.lineno}"
        for name, position in (("lr", 1), ("momentum", None), ("weight_decay", None)):
            value = ctx.number(ctx.argument(first.call, name, position))
            if value is not None:
                setattr(settings, name, value)
            elif name == "lr":
                meta = metadata.get("lr")
                if isinstance(meta, int | float):
                    settings.lr = float(meta)
                    settings.sources["optimizer"] += " (lr from the checkpoint)"
                else:
                    settings.sources["optimizer"] += f" (lr not static: {DEFAULT_LR:g} assumed)"
    elif isinstance(metadata.get("lr"), int | float):
        settings.lr = float(metadata["lr"])
        for name in ("momentum", "weight_decay"):
            if isinstance(metadata.get(name), int | float):
                setattr(settings, name, float(metadata[name]))
        settings.sources["optimizer"] = "the checkpoint's optimizer state"
    if ctx is not None:
        for call, qualname in ctx.calls_to(*_LOSSES):
            settings.loss = _LOSSES[qualname]
            settings.sources["loss"] = f"{script_name}:{call.lineno}"
            break
    return settings
