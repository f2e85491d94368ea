"""Layer kinds of PyTorch modules, by class name, so the eager and ONNX back ends agree on what a
module is (and nothing here needs torch imported)."""

from __future__ import annotations

from typing import Any

_KINDS = {
    "Linear": "linear",
    "Bilinear": "linear",
    "LazyLinear": "linear",
    "Conv1d": "conv",
    "Conv2d": "conv",
    "Conv3d": "conv",
    "LazyConv1d": "conv",
    "LazyConv2d": "conv",
    "LazyConv3d": "conv",
    "ConvTranspose1d": "conv_transpose",
    "ConvTranspose2d": "conv_transpose",
    "ConvTranspose3d": "conv_transpose",
    "BatchNorm1d": "norm",
    "BatchNorm2d": "norm",
    "BatchNorm3d": "norm",
    "LayerNorm": "norm",
    "GroupNorm": "norm",
    "InstanceNorm1d": "norm",
    "InstanceNorm2d": "norm",
    "InstanceNorm3d": "norm",
    "RMSNorm": "norm",
    "LSTM": "recurrent",
    "GRU": "recurrent",
    "RNN": "recurrent",
    "ReLU": "relu",
    "ReLU6": "relu",
    "LeakyReLU": "leaky_relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softmax": "softmax",
    "ELU": "elu",
    "SELU": "selu",
    "CELU": "elu",
    "GELU": "gelu",
    "Softplus": "softplus",
    "Hardsigmoid": "hardsigmoid",
    "Hardswish": "hardswish",
    "PReLU": "prelu",
    "SiLU": "silu",
    "Mish": "mish",
}


def module_kind(module: Any) -> str | None:
    """The layer kind of a module (its class or the nearest torch.nn base class), else None."""
    for cls in type(module).__mro__:
        kind = _KINDS.get(cls.__name__)
        if kind is not None and cls.__module__.startswith("torch.nn"):
            return kind
    return None


def module_kinds(model: Any) -> dict[str, str]:
    """Qualified module name -> kind, for the modules whose kind is known."""
    out: dict[str, str] = {}
    for name, sub in model.named_modules(remove_duplicate=False):
        kind = module_kind(sub)
        if kind is not None:
            out[name] = kind
    return out
