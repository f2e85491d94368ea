"""Weights of an ONNX model as a state_dict: initializers named by module path, in PyTorch's
layout, with each layer's kind and the activation that follows it read from the graph.

PyTorch's exporters keep parameter names on initializers (`fc1.weight`, `features.0.weight`) except
where they rewrite a weight: Conv+BatchNorm folded in eval mode, a Linear on 3-D input exported as
MatMul with a transposed copy (`onnx::MatMul_42`). Those are named after the node that consumes them
(`/layer1/layer1.0/conv1/Conv` -> `layer1.0.conv1`). Gemm and MatMul weights are turned back into
PyTorch's (out_features, in_features) so fan-in and fan-out mean the same for every file kind.
No onnxruntime and no torch: `onnx` and numpy only.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nnprobe.probe.layers import FileStructure

if TYPE_CHECKING:
    import onnx

# Which input of each weight op holds which parameter, and the layer kind it makes.
_PARAMS: dict[str, tuple[str, dict[int, str]]] = {
    "Conv": ("conv", {1: "weight", 2: "bias"}),
    "ConvTranspose": ("conv_transpose", {1: "weight", 2: "bias"}),
    "BatchNormalization": (
        "batchnorm",
        {1: "weight", 2: "bias", 3: "running_mean", 4: "running_var"},
    ),
    "LayerNormalization": ("layernorm", {1: "weight", 2: "bias"}),
    "InstanceNormalization": ("norm", {1: "weight", 2: "bias"}),
    "GroupNormalization": ("norm", {1: "weight", 2: "bias"}),
    "LSTM": ("lstm", {1: "W", 2: "R", 3: "B"}),
    "GRU": ("gru", {1: "W", 2: "R", 3: "B"}),
    "RNN": ("rnn", {1: "W", 2: "R", 3: "B"}),
}
_NORM_OPS = frozenset(
    {"BatchNormalization", "LayerNormalization", "InstanceNormalization", "GroupNormalization"}
)
# Activation ops by the names the rules use (those of nnprobe.inspectors.script.models).
ACTIVATION_OPS = {
    "Relu": "relu",
    "LeakyRelu": "leaky_relu",
    "PRelu": "prelu",
    "Elu": "elu",
    "Selu": "selu",
    "Celu": "celu",
    "Gelu": "gelu",
    "Mish": "mish",
    "HardSwish": "hardswish",
    "Sigmoid": "sigmoid",
    "HardSigmoid": "hardsigmoid",
    "Tanh": "tanh",
    "Softsign": "softsign",
    "Softplus": "softplus",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
}
_REUSE_SUFFIX = re.compile(r"_\d+$")
# Ops between a layer and its activation that do not change which activation it is.
_TRANSPARENT = frozenset(
    {
        "Identity",
        "Dropout",
        "MaxPool",
        "Flatten",
        "Reshape",
        "Transpose",
        "Squeeze",
        "Unsqueeze",
    }
)


# The most nodes (subgraphs included) a graph may have to be read: 5x a large detector. Exports
# of real models: ResNet-50 about 120 nodes, BERT-base 1-2k, GPT-2 about 3k, detection models
# 5-10k, a 7B-parameter language model 10-20k. Past this a graph is refused right after parsing
# (a 200k-node, 5 MB graph took 7.5 GB to probe; refused, it takes 40 MB and 2 s).
MAX_NODES = 50_000


def node_count(graph: onnx.GraphProto, limit: int = MAX_NODES) -> int:
    """The nodes of `graph` and of every subgraph its nodes hold (If, Loop, Scan bodies),
    counted until the count passes `limit`."""
    count, pending = 0, [graph]
    while pending:
        current = pending.pop()
        count += len(current.node)
        if count > limit:
            return count
        for node in current.node:
            for attr in node.attribute:
                if attr.HasField("g"):
                    pending.append(attr.g)
                pending.extend(attr.graphs)
    return count


def too_many_nodes(count: int) -> str:
    return (
        f"the ONNX graph has {count:,} nodes or more (subgraphs included), over the "
        f"{MAX_NODES:,} nnprobe reads (real exports have up to about 20,000): not read"
    )


@dataclass
class OnnxWeights:
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    other: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    structure: FileStructure = field(default_factory=FileStructure)


def float_array(tensor: onnx.TensorProto) -> tuple[np.ndarray, str]:
    """(array, original dtype name); floating data as float32 (float64 kept)."""
    from onnx import numpy_helper

    array = numpy_helper.to_array(tensor)
    dtype = str(array.dtype)
    if dtype in ("float32", "float64"):
        return array, dtype
    if array.dtype.kind == "f" or dtype.startswith(("bfloat16", "float8", "float4")):
        return array.astype(np.float32), dtype
    return array, dtype


def scope_module(node_name: str, known: Collection[str] = ()) -> str | None:
    """The module path in a TorchScript-exporter node name, None if it is not one.

    `/layer1/layer1.0/conv1/Conv` names `layer1.0.conv1`: each component is the module's name
    below its parent, and children of containers repeat the parent's atoms (`layer1.0` below
    `layer1`). A module called twice gets a `_1` suffix, dropped when `known` names the module."""
    if not node_name.startswith("/"):
        return None
    path: list[str] = []
    for component in node_name.split("/")[1:-1]:
        atoms = component.split(".")
        head = atoms[:-1]
        if head and path[-len(head) :] == head:
            path.extend(atoms[len(head) :])
        else:
            path.extend(atoms)
    module = ".".join(path)
    if known and module not in known:
        plain = ".".join(_REUSE_SUFFIX.sub("", atom) for atom in path)
        if plain in known:
            return plain
    return module


def read_weights(model: onnx.ModelProto) -> OnnxWeights:
    graph = model.graph
    constants: dict[str, Any] = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    constants[node.output[0]] = attr.t
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    # Identity and 2-D Transpose of a constant are the same constant (tied or pre-transposed).
    aliases: dict[str, tuple[str, bool]] = {name: (name, False) for name in constants}
    for node in graph.node:
        if not node.input or node.input[0] not in aliases or not node.output:
            continue
        root, transposed = aliases[node.input[0]]
        if node.op_type == "Identity":
            aliases[node.output[0]] = (root, transposed)
        elif node.op_type == "Transpose" and _is_2d_swap(node, constants[root]):
            aliases[node.output[0]] = (root, not transposed)

    known = {
        name.rsplit(".", 1)[0]
        for name in (t.name for t in graph.initializer)
        if "." in name and not name.startswith("onnx::")
    }
    out = OnnxWeights()
    arrays: dict[str, tuple[np.ndarray, str]] = {}
    used: set[str] = set()

    def array(root: str) -> tuple[np.ndarray, str]:
        if root not in arrays:
            arrays[root] = float_array(constants[root])
        return arrays[root]

    def module_of(node: Any, index: int) -> str:
        scoped = scope_module(node.name, known)
        return scoped if scoped is not None else f"{node.op_type.lower()}_{index}"

    def add(
        node: Any, index: int, value: str, local: str, transpose: bool, kind: str
    ) -> str | None:
        if value not in aliases:
            return None
        root, transposed = aliases[value]
        data, dtype = array(root)
        if data.dtype.kind != "f":
            return None
        if transposed != transpose:
            data = data.T
        if "." in root and not root.startswith("onnx::"):
            module, _, name_local = root.rpartition(".")
            if module in out.structure.kinds and out.structure.kinds[module] != kind:
                module = module_of(node, index)
            else:
                local = name_local
        else:
            module = module_of(node, index)
        full = f"{module}.{local}" if module else local
        if root in used or full in out.tensors:
            return module
        used.add(root)
        out.tensors[full] = np.ascontiguousarray(data)
        out.dtypes[full] = dtype
        out.structure.kinds.setdefault(module, kind)
        return module

    for index, node in enumerate(graph.node):
        op = node.op_type
        inputs = list(node.input)
        module: str | None = None
        result = node.output[0] if node.output else None
        if op == "Gemm" and len(inputs) > 1:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            module = add(node, index, inputs[1], "weight", not trans_b, "linear")
            if module is not None and len(inputs) > 2 and inputs[2]:
                add(node, index, inputs[2], "bias", False, "linear")
        elif op == "MatMul" and len(inputs) == 2 and _is_matrix(inputs[1], aliases, constants):
            module = add(node, index, inputs[1], "weight", True, "linear")
            follow = consumers.get(result or "", [])
            if module is not None and len(follow) == 1 and follow[0].op_type == "Add":
                bias = [n for n in follow[0].input if n != result and n in aliases]
                if bias:
                    add(follow[0], index, bias[0], "bias", False, "linear")
                    result = follow[0].output[0]
        elif op == "Gather" and len(inputs) == 2 and _is_matrix(inputs[0], aliases, constants):
            if inputs[1] not in aliases:
                module = add(node, index, inputs[0], "weight", False, "embedding")
        elif op in _PARAMS:
            kind, params = _PARAMS[op]
            for position, local in params.items():
                if position < len(inputs) and inputs[position]:
                    found = add(node, index, inputs[position], local, False, kind)
                    module = module or found
        if module is None or result is None or op in _NORM_OPS or op == "Gather":
            continue
        activation, normalized = _activation_after(result, consumers, outputs, aliases, constants)
        if activation is not None:
            out.structure.activations.setdefault(module, activation)
            if normalized:
                out.structure.normalized.add(module)

    for tensor in graph.initializer:
        if tensor.name in used or "." not in tensor.name or tensor.name.startswith("onnx::"):
            continue
        data, dtype = array(tensor.name)
        target = out.tensors if data.dtype.kind == "f" else out.other
        target[tensor.name] = data
        out.dtypes[tensor.name] = dtype
    return out


def _is_2d_swap(node: Any, tensor: Any) -> bool:
    if len(tensor.dims) != 2:
        return False
    perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
    return not perm or perm[0] == [1, 0]


def _is_matrix(value: str, aliases: Mapping[str, tuple[str, bool]], constants: Any) -> bool:
    return value in aliases and len(constants[aliases[value][0]].dims) == 2


def _activation_after(
    value: str,
    consumers: Mapping[str, list[Any]],
    outputs: set[str],
    aliases: Mapping[str, tuple[str, bool]],
    constants: Mapping[str, Any],
) -> tuple[str | None, bool]:
    """The activation applied to `value` ("linear" when it is a graph output), looking through
    ops that keep it (dropout, pooling, reshapes, a bias Add) and normalisations (flagged)."""
    normalized = False
    for _ in range(8):
        if value in outputs:
            return "linear", normalized
        following = consumers.get(value, [])
        if len(following) != 1:
            return None, normalized
        node = following[0]
        op = node.op_type
        if op in ACTIVATION_OPS:
            return ACTIVATION_OPS[op], normalized
        if op == "Clip":
            return _clip_activation(node, aliases, constants), normalized
        if op in _NORM_OPS:
            normalized = True
        elif op == "Add" and any(n in aliases for n in node.input if n != value):
            pass
        elif op not in _TRANSPARENT:
            return None, normalized
        if not node.output:
            return None, normalized
        value = node.output[0]
    return None, normalized


def _clip_activation(
    node: Any, aliases: Mapping[str, tuple[str, bool]], constants: Mapping[str, Any]
) -> str | None:
    """Clip(0, 6) is ReLU6 and Clip(0) a ReLU, as the exporters write them."""
    from onnx import numpy_helper

    def bound(position: int) -> float | None:
        if position >= len(node.input) or node.input[position] not in aliases:
            return None
        data = numpy_helper.to_array(constants[aliases[node.input[position]][0]])
        return float(data.reshape(())) if data.size == 1 else None

    low, high = bound(1), bound(2)
    if low == 0.0 and high == 6.0:
        return "relu6"
    if low == 0.0 and high is None:
        return "relu"
    return None
