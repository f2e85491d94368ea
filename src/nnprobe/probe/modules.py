"""Layer kinds of PyTorch modules, by class name, so the eager and ONNX back ends agree on what a
module is (and nothing here needs torch imported)."""

from __future__ import annotations

from typing import Any

from nnprobe.probe.layers import MODULE_KINDS

# The probe's kinds are coarser than the weight rules' (one "norm", one "recurrent"), for the
# same torch.nn classes; recurrent cells step one input at a time and are not probed as layers.
_COARSE = {
    "linear": "linear",
    "conv": "conv",
    "conv_transpose": "conv_transpose",
    "batchnorm": "norm",
    "layernorm": "norm",
    "norm": "norm",
    "lstm": "recurrent",
    "gru": "recurrent",
    "rnn": "recurrent",
}
_ACTIVATIONS = {
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
_KINDS = {
    cls: _COARSE[kind]
    for cls, kind in MODULE_KINDS.items()
    if kind in _COARSE and not cls.endswith("Cell")
} | _ACTIVATIONS


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
