"""Which values of an ONNX graph the activation rules need, and where each comes from.

An exported graph names things after the PyTorch modules that made them, in two dialects:
- the TorchScript exporter names nodes by scope, `/features/features.2/conv/Conv`, each component
  being the module's *unqualified* name (its qualified name from the last non-numeric atom on, so
  `features.2.conv` appears as `conv` below `features.2`), and a module called twice gets `_1`, `_2`
  suffixes (`/act_1/Relu`); parameters keep their state_dict names (`features.0.weight`);
- the dynamo exporter keeps qualified names in each node's `namespace` metadata
  (`: __main__.Net/features: ...Sequential/features.1: ...ReLU`).
Both are read here, with the model's real module names (when we have the model) to resolve the
ambiguous cases. Graphs from elsewhere fall back to the parameter names their weights carry.

The tracked values are the outputs of weight layers (Gemm, MatMul with a constant operand plus its
bias Add, Conv, ConvTranspose, normalisations, recurrent cells) and of activation functions. Each
knows the nearest tracked value feeding it and the weight layer behind it, so a finding on a ReLU
can say which layer starves it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nnprobe.inspectors.activation_context import ACTIVATION_KINDS, NORM_KINDS, WEIGHT_KINDS

if TYPE_CHECKING:
    import onnx

OP_KINDS = {
    "Gemm": "linear",
    "MatMul": "linear",
    "Conv": "conv",
    "ConvTranspose": "conv_transpose",
    "BatchNormalization": "norm",
    "LayerNormalization": "norm",
    "InstanceNormalization": "norm",
    "GroupNormalization": "norm",
    "LSTM": "recurrent",
    "GRU": "recurrent",
    "RNN": "recurrent",
    "Relu": "relu",
    "LeakyRelu": "leaky_relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softmax": "softmax",
    "Elu": "elu",
    "Selu": "selu",
    "Gelu": "gelu",
    "Softplus": "softplus",
    "HardSigmoid": "hardsigmoid",
    "HardSwish": "hardswish",
    "PRelu": "prelu",
    "Mish": "mish",
}
_CHANNEL_FIRST_OPS = frozenset(
    {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "GroupNormalization"}
)
_REUSE_SUFFIX = re.compile(r"_(\d+)$")


@dataclass(frozen=True)
class TrackedValue:
    """One value the probe exposes as a graph output and measures."""

    name: str
    module: str
    kind: str
    op: str
    order: int
    unit_axis: str = "auto"  # "channel" (axis 1), "last", or "auto"
    layer: str | None = None
    source: str | None = None
    is_output: bool = False
    correlate_input: bool = False


@dataclass
class LayerGraph:
    """The tracked values of one graph, in topological order, and its (first) input."""

    input_name: str
    input_shape: tuple[int | str | None, ...]
    input_dtype: str
    values: list[TrackedValue] = field(default_factory=list)

    @property
    def output_names(self) -> list[str]:
        return [v.name for v in self.values]


def unqualified(qualified: str) -> str:
    """The scope component the TorchScript exporter writes for a module's qualified name."""
    atoms = qualified.split(".")
    for i in range(len(atoms) - 1, -1, -1):
        if not atoms[i].isnumeric():
            return ".".join(atoms[i:])
    return qualified


def _child(parent: str, component: str, known: Collection[str] | None) -> str:
    """The qualified name of `component` (an unqualified scope name) below `parent`."""
    if known:
        prefix = parent + "." if parent else ""
        candidates = [component.rsplit(".", 1)[-1]]
        stripped = _REUSE_SUFFIX.sub("", component)
        if stripped != component:
            candidates.append(stripped.rsplit(".", 1)[-1])
        for atom in candidates:
            qualified = prefix + atom
            if qualified in known and unqualified(qualified) in (component, stripped):
                return qualified
    atoms = component.split(".")
    if len(atoms) > 1 and atoms[-1].isnumeric():
        head = atoms[:-1]
        parent_atoms = parent.split(".") if parent else []
        if parent_atoms[-len(head) :] == head:
            return f"{parent}.{atoms[-1]}"
    return f"{parent}.{component}" if parent else component


def scope_module(node_name: str, known: Collection[str] | None = None) -> str | None:
    """Module path from a TorchScript-exporter node name, or None if it is not one."""
    if not node_name.startswith("/"):
        return None
    parts = node_name.split("/")[1:-1]
    path = ""
    for part in parts:
        path = _child(path, part, known)
    if known is not None and path and path not in known:
        stripped = ".".join(_REUSE_SUFFIX.sub("", a) for a in path.split("."))
        if stripped in known:
            return stripped
    return path


def namespace_module(namespace: str) -> str:
    """Module path from the dynamo exporter's `namespace` metadata."""
    path = ""
    for part in namespace.split("/"):
        name, _, cls = part.partition(":")
        name, cls = name.strip(), cls.strip()
        if not name or cls.startswith(("aten.", "<built-in", "prims.")):
            continue
        path = name
    return path


def _param_module(initializer: str) -> str:
    return initializer.rsplit(".", 1)[0] if "." in initializer else ""


def build_graph(
    model: onnx.ModelProto,
    module_names: Collection[str] | None = None,
    module_kinds: Mapping[str, str] | None = None,
) -> LayerGraph:
    """The tracked values of `model`. `module_names` are the model's qualified module names and
    `module_kinds` their layer kinds (from the nn.Module, when there is one). A graph over
    onnx_weights.MAX_NODES is refused before anything is built (loading refuses such files; this
    covers graphs from elsewhere: the probe API, the export cache)."""
    from nnprobe.probe.onnx_weights import MAX_NODES, node_count, too_many_nodes

    g = model.graph
    count = node_count(g)
    if count > MAX_NODES:
        raise ValueError(too_many_nodes(count))
    initializers = {t.name for t in g.initializer}
    graph_inputs = [i for i in g.input if i.name not in initializers]
    if not graph_inputs:
        raise ValueError("the graph has no input")
    first = graph_inputs[0]
    shape: list[int | str | None] = []
    for dim in first.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            shape.append(dim.dim_param)
        else:
            shape.append(None)
    import onnx as _onnx

    elem = first.type.tensor_type.elem_type
    dtype = _onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "float32"

    producer: dict[str, int] = {}
    consumers: dict[str, list[int]] = {}
    constant: set[str] = set(initializers)
    nodes = list(g.node)
    for i, node in enumerate(nodes):
        for out in node.output:
            producer[out] = i
        for inp in node.input:
            consumers.setdefault(inp, []).append(i)
        ins = [n for n in node.input if n]
        if node.op_type == "Constant" or (ins and all(n in constant for n in ins)):
            constant.update(node.output)
    graph_outputs = {o.name for o in g.output}
    known = set(module_names) if module_names is not None else None
    kinds = dict(module_kinds or {})

    def param_root(value: str, depth: int = 0) -> str | None:
        """The initializer a constant value derives from (through Transpose, Slice, ...)."""
        if value in initializers:
            return value
        if depth > 8 or value not in producer:
            return None
        for inp in nodes[producer[value]].input:
            if inp in constant:
                found = param_root(inp, depth + 1)
                if found is not None:
                    return found
        return None

    def module_of(i: int) -> str:
        node = nodes[i]
        scoped = scope_module(node.name, known)
        if scoped is not None:
            return scoped
        for prop in node.metadata_props:
            if prop.key == "namespace":
                return namespace_module(prop.value)
        for inp in node.input:
            if inp in constant:
                root = param_root(inp)
                if root is not None and "." in root:
                    return _param_module(root)
        return ""

    def scope_of(i: int) -> str:
        name = nodes[i].name
        return name.rsplit("/", 1)[0] if name.startswith("/") else f"#{i}"

    # Pick (node index, output value, kind) for every tracked value.
    picks: dict[int, tuple[str, str]] = {}
    skipped: set[int] = set()
    for i, node in enumerate(nodes):
        kind = OP_KINDS.get(node.op_type)
        if kind is None or i in skipped or not node.output:
            continue
        if node.op_type == "MatMul":
            if not any(inp in constant for inp in node.input):
                continue  # attention scores, not a layer
            out = node.output[0]
            for j in consumers.get(out, []):
                follower = nodes[j]
                if (
                    follower.op_type == "Add"
                    and scope_of(j) == scope_of(i)
                    and any(inp in constant for inp in follower.input)
                ):
                    picks[j] = (follower.output[0], "linear")
                    break
            else:
                picks[i] = (out, "linear")
            continue
        if node.op_type == "Sigmoid":
            x = node.input[0]
            swish = [
                j
                for j in consumers.get(node.output[0], [])
                if nodes[j].op_type == "Mul" and x in nodes[j].input
            ]
            if swish:
                picks[swish[0]] = (nodes[swish[0]].output[0], "silu")
                continue
        if node.op_type in ("Tanh", "Sigmoid") and kinds.get(module_of(i)) in (
            "gelu",
            "silu",
            "mish",
            "hardswish",
        ):
            continue  # part of a composite activation, tracked at its module's output
        picks[i] = (node.output[0], kind)
    for i, node in enumerate(nodes):
        if node.op_type == "Erf" and i not in picks:
            out = _gelu_output(i, nodes, consumers, scope_of)
            if out is not None:
                picks[out[0]] = (out[1], "gelu")

    tracked_at: dict[str, int] = {value: i for i, (value, _) in picks.items()}

    def nearest_source(i: int) -> str | None:
        seen: set[str] = set()
        queue: deque[str] = deque(n for n in nodes[i].input if n and n not in constant)
        while queue:
            value = queue.popleft()
            if value in seen:
                continue
            seen.add(value)
            if value in tracked_at:
                return value
            p = producer.get(value)
            if p is None:
                continue
            queue.extend(n for n in nodes[p].input if n and n not in constant)
        return None

    values: list[TrackedValue] = []
    by_name: dict[str, TrackedValue] = {}
    first_conv: str | None = None
    for order, i in enumerate(sorted(picks)):
        value, kind = picks[i]
        module = module_of(i)
        op = nodes[i].op_type
        if kind == "linear" and op == "Add":
            op = "MatMul"
        source = nearest_source(i)
        src = by_name.get(source) if source else None
        if op in _CHANNEL_FIRST_OPS:
            axis = "channel"
        elif op in ("MatMul", "LSTM", "GRU", "RNN", "LayerNormalization"):
            axis = "last"
        elif op == "Gemm":
            axis = "channel"
        else:
            axis = src.unit_axis if src is not None else "auto"
        if kind in WEIGHT_KINDS:
            layer: str | None = module
        else:
            layer = src.layer if src is not None else None
        correlate = False
        if kind == "conv" and first_conv is None and source is None:
            first_conv, correlate = value, True
        elif first_conv is not None and kind in ACTIVATION_KINDS and src is not None:
            # The activation right after the first conv (through its norm layer, if any).
            correlate = src.name == first_conv or (
                src.kind in NORM_KINDS and src.source == first_conv
            )
        tracked = TrackedValue(
            name=value,
            module=module,
            kind=kind,
            op=op,
            order=order,
            unit_axis=axis,
            layer=layer,
            source=source,
            is_output=value in graph_outputs,
            correlate_input=correlate,
        )
        values.append(tracked)
        by_name[value] = tracked
    return LayerGraph(first.name, tuple(shape), dtype, values)


def _gelu_output(
    erf: int, nodes: list[onnx.NodeProto], consumers: dict[str, list[int]], scope_of: object
) -> tuple[int, str] | None:
    """The exact-GELU decomposition x * 0.5 * (1 + erf(x / sqrt 2)): its last Mul."""
    assert callable(scope_of)
    scope = scope_of(erf)
    last: tuple[int, str] | None = None
    frontier = [erf]
    for _ in range(4):
        nxt = []
        for i in frontier:
            for j in consumers.get(nodes[i].output[0], []):
                if nodes[j].op_type in ("Add", "Mul") and scope_of(j) == scope:
                    nxt.append(j)
                    if nodes[j].op_type == "Mul":
                        last = (j, nodes[j].output[0])
        frontier = nxt
    return last


def expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` whose graph outputs include every name in `names` (ONNX Runtime then
    cannot fuse the nodes that produce them away)."""
    import onnx as _onnx

    exposed = _onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(_onnx.ValueInfoProto(name=name))
            present.add(name)
    return exposed
