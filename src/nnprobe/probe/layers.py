"""The layers of a checkpoint, read from its weights alone: which module paths are linear, conv,
batchnorm, layernorm, embedding or recurrent layers, in the order the model registered them.

A state_dict says a lot by its names and shapes (`running_var` means a BatchNorm, `weight_ih_l0` a
recurrent layer, a 4-D `weight` a Conv2d) and nothing about what follows a layer: whether `fc1`
feeds a ReLU or a tanh lives in `forward`, not in the weights. That comes from the file where the
file knows it (the ONNX graph, a TorchScript or pickled module's `nn.Sequential` order) or from
`activation_hints` (module path -> activation name, e.g. from the training script's static model);
where nobody knows, `activation` stays None and the rules that need it stay silent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnprobe.probe.loading import Checkpoint

WEIGHT_KINDS = frozenset(
    {"linear", "conv", "conv_transpose", "embedding", "lstm", "gru", "rnn", "attention"}
)
# Layers whose weight scale an init scheme sets (He/Glorot/LeCun speak of these).
INIT_KINDS = frozenset({"linear", "conv", "conv_transpose"})
NORM_KINDS = frozenset({"batchnorm", "layernorm", "norm"})
_EMBEDDING_NAME = re.compile(r"(^|[._])(embed\w*|emb|wte|wpe|tok\w*|word\w*|pos\w*)$", re.I)
_NORM_NAME = re.compile(r"(norm|^ln|[._]ln\w*|^bn|[._]bn\w*)", re.I)
_RNN_WEIGHT = re.compile(r"weight_(ih|hh)(_l\d+(_reverse)?)?$")

# Module class names (torch.nn) by the kind used here.
MODULE_KINDS = {
    "Linear": "linear",
    "LazyLinear": "linear",
    "Bilinear": "linear",
    "Conv1d": "conv",
    "Conv2d": "conv",
    "Conv3d": "conv",
    "LazyConv1d": "conv",
    "LazyConv2d": "conv",
    "LazyConv3d": "conv",
    "ConvTranspose1d": "conv_transpose",
    "ConvTranspose2d": "conv_transpose",
    "ConvTranspose3d": "conv_transpose",
    "BatchNorm1d": "batchnorm",
    "BatchNorm2d": "batchnorm",
    "BatchNorm3d": "batchnorm",
    "SyncBatchNorm": "batchnorm",
    "LayerNorm": "layernorm",
    "GroupNorm": "norm",
    "InstanceNorm1d": "norm",
    "InstanceNorm2d": "norm",
    "InstanceNorm3d": "norm",
    "RMSNorm": "norm",
    "Embedding": "embedding",
    "EmbeddingBag": "embedding",
    "LSTM": "lstm",
    "LSTMCell": "lstm",
    "GRU": "gru",
    "GRUCell": "gru",
    "RNN": "rnn",
    "RNNCell": "rnn",
    "MultiheadAttention": "attention",
}
# Modules that sit between a layer and its activation without changing which activation it is.
_TRANSPARENT = frozenset(
    {
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "Identity",
        "Flatten",
        "Unflatten",
        "MaxPool1d",
        "MaxPool2d",
        "MaxPool3d",
    }
)


@dataclass(frozen=True)
class Layer:
    """One module that owns tensors. `params` maps local names to the checkpoint's tensor names
    (`{"weight": "fc1.weight", "bias": "fc1.bias"}`); `activation` is the activation applied to
    its output (None: unknown; "linear": none, the output goes on as is); `normalized` means a
    normalisation layer sits between the layer and that activation."""

    path: str
    kind: str
    params: Mapping[str, str]
    order: int
    activation: str | None = None
    normalized: bool = False

    @property
    def weight(self) -> str | None:
        """The tensor name of the layer's main weight, if it has one."""
        return self.params.get("weight")

    @property
    def weights(self) -> list[str]:
        """Every weight matrix of the layer (one for linear/conv, several for recurrent ones)."""
        if self.kind in ("lstm", "gru", "rnn"):
            return [n for local, n in self.params.items() if _RNN_WEIGHT.match(local)] or [
                n for local, n in self.params.items() if local in ("W", "R")
            ]
        if self.kind == "attention":
            return [n for local, n in self.params.items() if local.endswith("proj_weight")]
        return [self.params["weight"]] if "weight" in self.params else []


@dataclass
class FileStructure:
    """What the file itself says about its layers, beyond names and shapes."""

    kinds: dict[str, str] = field(default_factory=dict)
    activations: dict[str, str] = field(default_factory=dict)
    normalized: set[str] = field(default_factory=set)


def split_name(name: str) -> tuple[str, str]:
    """("features.0", "weight") from "features.0.weight"; ("", "cls_token") from "cls_token"."""
    module, _, local = name.rpartition(".")
    return module, local


def infer_layers(
    checkpoint: Checkpoint, activation_hints: Mapping[str, str] | None = None
) -> list[Layer]:
    """The checkpoint's layers in registration order. The file's own knowledge of kinds and
    activations wins over `activation_hints`, which fill the gaps."""
    hints = {k: v.lower() for k, v in (activation_hints or {}).items()}
    structure = checkpoint.structure
    shapes = {name: tuple(array.shape) for name, array in checkpoint.tensors.items()}
    shapes.update({name: tuple(array.shape) for name, array in checkpoint.other.items()})
    grouped: dict[str, dict[str, str]] = {}
    for name in [*checkpoint.tensors, *checkpoint.other]:
        module, local = split_name(name)
        grouped.setdefault(module, {})[local] = name
    layers = []
    for order, (module, params) in enumerate(grouped.items()):
        kind = structure.kinds.get(module) or guess_kind(module, params, shapes)
        activation = structure.activations.get(module) or hints.get(module)
        layers.append(
            Layer(
                path=module,
                kind=kind,
                params=params,
                order=order,
                activation=activation,
                normalized=module in structure.normalized,
            )
        )
    return layers


def guess_kind(
    module: str, params: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]]
) -> str:
    """A layer kind from parameter names and shapes alone."""
    local = set(params)
    if {"running_mean", "running_var"} <= local:
        return "batchnorm"
    rnn = [p for p in local if _RNN_WEIGHT.match(p)]
    if rnn:
        return _recurrent_kind(params, shapes, rnn)
    if "in_proj_weight" in local or "q_proj_weight" in local:
        return "attention"
    if "weight" not in local:
        return "other"
    dims = len(shapes.get(params["weight"], ()))
    last = module.rsplit(".", 1)[-1]
    if dims == 2:
        if "bias" not in local and _EMBEDDING_NAME.search(last):
            return "embedding"
        return "linear"
    if dims in (3, 4, 5):
        return "conv"
    if dims == 1 and ("bias" in local or _NORM_NAME.search(last)):
        return "layernorm" if re.search(r"ln|layer", last, re.I) else "norm"
    return "other"


def _recurrent_kind(
    params: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]], names: Iterable[str]
) -> str:
    """lstm, gru or rnn: weight_hh stacks 4, 3 or 1 gate blocks of hidden_size rows."""
    for local in sorted(names):
        if local.startswith("weight_hh"):
            shape = shapes.get(params[local], ())
            if len(shape) == 2 and shape[1] and shape[0] % shape[1] == 0:
                return {4: "lstm", 3: "gru", 1: "rnn"}.get(shape[0] // shape[1], "rnn")
    return "rnn"


def module_structure(model: Any) -> FileStructure:
    """Kinds and activations from a live module tree (TorchScript or nn.Module): each weight layer
    inside an `nn.Sequential` takes the activation module that follows it there."""
    from nnprobe.inspectors.script.models import ACTIVATION_MODULES

    structure = FileStructure()

    def class_name(module: Any) -> str:
        return str(getattr(module, "original_name", None) or type(module).__name__)

    root_is_sequential = class_name(model) == "Sequential"
    for path, module in model.named_modules():
        cls = class_name(module)
        if cls in MODULE_KINDS:
            structure.kinds[path] = MODULE_KINDS[cls]
        if cls != "Sequential":
            continue
        children = list(module.named_children())
        for i, (name, child) in enumerate(children):
            if MODULE_KINDS.get(class_name(child)) not in INIT_KINDS:
                continue
            child_path = f"{path}.{name}" if path else name
            normalized = False
            activation: str | None = None
            for _, after in children[i + 1 :]:
                after_cls = class_name(after)
                if after_cls in _TRANSPARENT:
                    continue
                if MODULE_KINDS.get(after_cls) in NORM_KINDS:
                    normalized = True
                    continue
                activation = ACTIVATION_MODULES.get("torch.nn." + after_cls)
                break
            else:
                if root_is_sequential and path == "":
                    activation = "linear"
            if activation is not None:
                structure.activations[child_path] = activation
                if normalized:
                    structure.normalized.add(child_path)
    return structure
