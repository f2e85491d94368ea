"""The networks a script defines, as ordered layers and activations, read without running it.

Three shapes are understood: `nn.Sequential(...)` (also nested, and `OrderedDict` entries),
`nn.Module` subclasses (submodules from `__init__`, data flow from `forward`, including functional
calls such as `F.relu(x)` and tensor methods such as `x.softmax(dim=1)`), and factories
(`def make_model(): return nn.Sequential(...)`). Where the flow cannot be followed the model is
marked incomplete, so rules that need the whole picture can stay silent.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from nnprobe.inspectors.script.lists import grown_items, list_items, may_grow, mutates
from nnprobe.inspectors.script.walk import children, walk, walk_statements

if TYPE_CHECKING:
    from nnprobe.inspectors.script.context import ScriptContext

NN = "torch.nn."
WEIGHT_LAYERS = frozenset(
    NN + n
    for n in (
        "Linear",
        "LazyLinear",
        "Bilinear",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
        "LazyConv1d",
        "LazyConv2d",
        "LazyConv3d",
    )
)
RECURRENT_LAYERS = frozenset(
    NN + n for n in ("RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell")
)
NORM_LAYERS = frozenset(
    NN + n
    for n in (
        "BatchNorm1d",
        "BatchNorm2d",
        "BatchNorm3d",
        "LazyBatchNorm1d",
        "LazyBatchNorm2d",
        "LazyBatchNorm3d",
        "SyncBatchNorm",
        "LayerNorm",
        "GroupNorm",
        "InstanceNorm1d",
        "InstanceNorm2d",
        "InstanceNorm3d",
        "RMSNorm",
        "LocalResponseNorm",
    )
)
DROPOUT_LAYERS = frozenset(
    NN + n
    for n in (
        "Dropout",
        "Dropout1d",
        "Dropout2d",
        "Dropout3d",
        "AlphaDropout",
        "FeatureAlphaDropout",
    )
)
# Activation modules and functions, by the canonical name rules speak of.
ACTIVATION_MODULES = {
    NN + "ReLU": "relu",
    NN + "ReLU6": "relu6",
    NN + "LeakyReLU": "leaky_relu",
    NN + "PReLU": "prelu",
    NN + "RReLU": "rrelu",
    NN + "ELU": "elu",
    NN + "SELU": "selu",
    NN + "CELU": "celu",
    NN + "GELU": "gelu",
    NN + "SiLU": "silu",
    NN + "Mish": "mish",
    NN + "Hardswish": "hardswish",
    NN + "Sigmoid": "sigmoid",
    NN + "Hardsigmoid": "hardsigmoid",
    NN + "Tanh": "tanh",
    NN + "Hardtanh": "hardtanh",
    NN + "Softsign": "softsign",
    NN + "Softmax": "softmax",
    NN + "Softmax2d": "softmax",
    NN + "LogSoftmax": "log_softmax",
    NN + "Softplus": "softplus",
    NN + "LogSigmoid": "logsigmoid",
    NN + "Softmin": "softmin",
}
_FUNCTIONAL_NAMES = {
    "relu",
    "relu_",
    "relu6",
    "leaky_relu",
    "leaky_relu_",
    "prelu",
    "rrelu",
    "elu",
    "elu_",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "sigmoid",
    "sigmoid_",
    "hardsigmoid",
    "tanh",
    "tanh_",
    "hardtanh",
    "softsign",
    "softmax",
    "log_softmax",
    "softplus",
    "logsigmoid",
    "softmin",
}
ACTIVATION_FUNCTIONS = {
    f"{prefix}.{name}": name.rstrip("_")
    for prefix in ("torch.nn.functional", "torch", "torch.special")
    for name in _FUNCTIONAL_NAMES
}
ACTIVATION_FUNCTIONS["torch.special.expit"] = "sigmoid"
# Tensor methods that are activations: `x.softmax(dim=1)`, `x.relu()`.
ACTIVATION_METHODS = {
    "relu": "relu",
    "relu_": "relu",
    "sigmoid": "sigmoid",
    "sigmoid_": "sigmoid",
    "tanh": "tanh",
    "tanh_": "tanh",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
}
RELU_FAMILY = frozenset(
    {
        "relu",
        "relu6",
        "leaky_relu",
        "prelu",
        "rrelu",
        "elu",
        "selu",
        "celu",
        "gelu",
        "silu",
        "mish",
        "hardswish",
    }
)
SATURATING = frozenset({"sigmoid", "tanh", "hardsigmoid", "hardtanh", "softsign"})
NORMALIZING = frozenset({"softmax", "log_softmax", "softmin"})
MODULE_BASES = frozenset(
    {
        "torch.nn.Module",
        "lightning.LightningModule",
        "pytorch_lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "pytorch_lightning.core.LightningModule",
    }
)
_PASSTHROUGH_METHODS = frozenset(
    {
        "to",
        "cuda",
        "cpu",
        "float",
        "double",
        "half",
        "bfloat16",
        "train",
        "eval",
        "requires_grad_",
        "to_empty",
        "share_memory",
    }
)


@dataclass
class Op:
    """One step of a network: a layer, an activation, a norm, a dropout or a residual join."""

    kind: str  # "layer" | "recurrent" | "activation" | "norm" | "dropout" | "residual" | "other"
    name: str  # qualified class for modules ("torch.nn.Linear"); canonical name for activations
    node: ast.AST  # where it is written: the constructor call, or the functional call
    path: str | None = None  # module path ("fc1", "features.3") when it is a submodule
    call: ast.Call | None = None  # the constructor call of a module
    branch: bool = False  # applied only on some paths through forward (inside an if)

    @property
    def is_weight_layer(self) -> bool:
        return self.kind in ("layer", "recurrent")


@dataclass
class ModelDef:
    name: str
    node: ast.AST  # ClassDef, FunctionDef (factory) or Call (nn.Sequential)
    ops: list[Op] = field(default_factory=list)  # in data-flow order, as far as it is known
    submodules: dict[str, list[Op]] = field(default_factory=dict)  # attribute -> its ops
    output: Op | None = None  # last op on the way out of forward, when unambiguous
    residual: bool = False
    complete: bool = True  # False when some submodule or call could not be followed
    kind: str = "sequential"  # "sequential" | "class" | "factory"

    @property
    def weight_layers(self) -> list[Op]:
        return [op for op in self.ops if op.is_weight_layer]

    @property
    def has_norm(self) -> bool:
        return any(op.kind == "norm" for op in self.ops)

    def activation_after(self, op: Op) -> Op | None:
        """The activation that follows `op` before the next weight layer (None when there is none
        or the layer is not in this model's flow)."""
        found = False
        for other in self.ops:
            if other is op:
                found = True
                continue
            if found:
                if other.kind == "activation":
                    return other
                if other.is_weight_layer:
                    return None
        return None

    def op_for_call(self, call: ast.AST) -> Op | None:
        for op in self.ops:
            if op.call is call or op.node is call:
                return op
        return None


class ModelIndex:
    """Every model definition in a script, and which one an expression at a use site refers to."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self._building: set[ast.AST] = set()
        self._cache: dict[ast.AST, ModelDef | None] = {}

    # ------------------------------------------------------------------ what is defined

    @cached_property
    def module_classes(self) -> dict[str, ast.ClassDef]:
        """Local classes that are nn.Modules (directly or through another local module class)."""
        result: dict[str, ast.ClassDef] = {}
        changed = True
        while changed:
            changed = False
            for name, cls in self.ctx.classes.items():
                if name in result:
                    continue
                for base in cls.bases:
                    qual = self.ctx.qualname(base)
                    if qual in MODULE_BASES or qual in result:
                        result[name] = cls
                        changed = True
                        break
        return result

    @cached_property
    def all(self) -> list[ModelDef]:
        """Every model: module classes, then top-level Sequentials and factories outside them."""
        models: list[ModelDef] = []
        for cls in self.module_classes.values():
            model = self.for_class(cls)
            if model is not None:
                models.append(model)
        for call, _ in self.ctx.calls_to(NN + "Sequential"):
            if self._inside_model(call):
                continue
            model = self.for_sequential(call)
            if model is not None:
                models.append(model)
        return models

    @cached_property
    def roots(self) -> list[ModelDef]:
        """Models that are not parts of other models defined in the file."""
        used: set[str] = set()
        classes = set(self.module_classes.values())
        for name in self.module_classes:
            for call in self.ctx.calls_of(name):
                if any(a in classes and a.name != name for a in self.ctx.ancestors(call)):
                    used.add(name)
                    break
        return [m for m in self.all if not (m.kind == "class" and m.name in used)]

    def _inside_model(self, node: ast.AST) -> bool:
        for ancestor in self.ctx.ancestors(node):
            if isinstance(ancestor, ast.ClassDef) and ancestor.name in self.module_classes:
                return True
            if isinstance(ancestor, ast.Call) and self.ctx.call_name(ancestor) == NN + "Sequential":
                return True
        return False

    # ------------------------------------------------------------------ use sites

    def for_expr(self, expr: ast.expr) -> ModelDef | None:
        """The model an expression evaluates to (`model`, `Net().to(device)`, `make_model()`)."""
        for _ in range(8):
            expr = self.ctx.resolve(expr)
            if (
                isinstance(expr, ast.Call)
                and isinstance(expr.func, ast.Attribute)
                and expr.func.attr in _PASSTHROUGH_METHODS
            ):
                expr = expr.func.value
                continue
            break
        if not isinstance(expr, ast.Call):
            return None
        name = self.ctx.call_name(expr)
        if name == NN + "Sequential":
            return self.for_sequential(expr)
        if isinstance(expr.func, ast.Name) and expr.func.id in self.module_classes:
            return self.for_class(self.module_classes[expr.func.id])
        returned = self.ctx.returned(expr)
        if returned is not None and returned is not expr:
            model = self.for_expr(returned)
            if model is not None and isinstance(expr.func, ast.Name):
                model.kind = "factory" if model.kind == "sequential" else model.kind
            return model
        return None

    def the_model(self, expr: ast.expr) -> ModelDef | None:
        """for_expr, or, when expr is an opaque name (a function parameter), the file's only root
        model when there is exactly one."""
        model = self.for_expr(expr)
        if model is not None:
            return model
        resolved = self.ctx.resolve(expr)
        if isinstance(resolved, ast.Name):
            bindings = self.ctx.bindings(resolved.id, resolved)
            if bindings and all(b.kind == "param" and b.value is None for b in bindings):
                if len(self.roots) == 1:
                    return self.roots[0]
        return None

    # ------------------------------------------------------------------ building

    def for_sequential(self, call: ast.Call, prefix: str = "") -> ModelDef | None:
        if call in self._cache:
            return self._cache[call]
        model = ModelDef(f"Sequential@{call.lineno}", call, kind="sequential")
        model.ops = self._sequential_ops(call, prefix, model)
        self._cache[call] = model
        return model

    def _sequential_ops(self, call: ast.Call, prefix: str, model: ModelDef) -> list[Op]:
        entries: list[tuple[str, ast.expr]] = []
        if len(call.args) == 1 and isinstance(call.args[0], ast.Call):
            inner = call.args[0]
            if self.ctx.call_name(inner) in ("collections.OrderedDict", "OrderedDict") and (
                inner.args and isinstance(inner.args[0], ast.List | ast.Tuple)
            ):
                for item in inner.args[0].elts:
                    if (
                        isinstance(item, ast.Tuple)
                        and len(item.elts) == 2
                        and isinstance(item.elts[0], ast.Constant)
                    ):
                        entries.append((str(item.elts[0].value), item.elts[1]))
                    else:
                        model.complete = False
            else:
                entries = [("0", call.args[0])]
        else:
            for arg in call.args:
                if isinstance(arg, ast.Starred):
                    model.complete = False
                    for element in self._starred_ops(arg, model):
                        entries.append((str(len(entries)), element))
                    continue
                entries.append((str(len(entries)), arg))
        ops: list[Op] = []
        for key, expr in entries:
            ops.extend(self._module_ops(expr, f"{prefix}{key}", model))
        return ops

    def _starred_ops(self, arg: ast.Starred, model: ModelDef) -> list[ast.expr]:
        """`nn.Sequential(*layers)` where layers is a list literal built in straight-line code,
        or grown in static loops (see lists.py)."""
        items = list_items(self.ctx, arg.value)
        if items is not None:
            model.complete = True
            return items
        if isinstance(arg.value, ast.Name) and may_grow(self.ctx, arg.value):
            return []
        value = self.ctx.resolve(arg.value)
        if isinstance(value, ast.List | ast.Tuple):
            model.complete = True
            return list(value.elts)
        return []

    def _module_ops(self, expr: ast.expr, path: str, model: ModelDef) -> list[Op]:
        """The ops a module-valued expression contributes (layer, block, nested Sequential)."""
        expr = self.ctx.resolve(expr)
        if not isinstance(expr, ast.Call):
            model.complete = False
            return []
        name = self.ctx.call_name(expr) or ""
        if name == NN + "Sequential":
            return self._sequential_ops(expr, path + ".", model)
        if name in (NN + "ModuleList",) and expr.args:
            items = expr.args[0]
            elements = (
                list(items.elts)
                if isinstance(items, ast.List | ast.Tuple)
                else list_items(self.ctx, items)
            )
            if elements is not None:
                ops: list[Op] = []
                for index, item in enumerate(elements):
                    ops.extend(self._module_ops(item, f"{path}.{index}", model))
                return ops
            model.complete = False
            return []
        op = module_op(name, expr, path)
        if op is not None:
            return [op]
        if isinstance(expr.func, ast.Name) and expr.func.id in self.module_classes:
            sub = self.for_class(self.module_classes[expr.func.id])
            if sub is None:
                model.complete = False
                return []
            model.residual = model.residual or sub.residual
            model.complete = model.complete and sub.complete
            return [
                Op(o.kind, o.name, o.node, f"{path}.{o.path}" if o.path else path, o.call, o.branch)
                for o in sub.ops
            ]
        returned = self.ctx.returned(expr)
        if returned is not None:
            return self._module_ops(returned, path, model)
        model.complete = False
        return [Op("other", name, expr, path, expr)]

    def for_class(self, cls: ast.ClassDef) -> ModelDef | None:
        if cls in self._cache:
            return self._cache[cls]
        if cls in self._building:  # recursive definition
            return None
        self._building.add(cls)
        try:
            model = ModelDef(cls.name, cls, kind="class")
            self._read_init(cls, model)
            forward = _method(cls, "forward")
            if forward is None:
                model.ops = [op for ops in model.submodules.values() for op in ops]
                model.complete = False
            else:
                model.ops = list(_FlowReader(self, model, forward).read())
            self._cache[cls] = model
            return model
        finally:
            self._building.discard(cls)

    def _read_init(self, cls: ast.ClassDef, model: ModelDef) -> None:
        init = _method(cls, "__init__")
        if init is None:
            return
        for node in walk_statements(init):
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    ops = self._grown_container(node, target, model)
                    if ops is None:
                        ops = self._module_ops(node.value, target.attr, model)
                    if ops:
                        model.submodules[target.attr] = ops

    def _grown_container(
        self, stmt: ast.Assign | ast.AnnAssign, target: ast.Attribute, model: ModelDef
    ) -> list[Op] | None:
        """`self.layers = nn.ModuleList()` (or an empty nn.Sequential) filled by the statements
        after it; None when the container is not one, or is never filled there."""
        value = stmt.value
        if (
            not isinstance(value, ast.Call)
            or value.args
            or value.keywords
            or self.ctx.call_name(value) not in (NN + "ModuleList", NN + "Sequential")
            or not mutates(self.ctx, stmt, target)
        ):
            return None
        elements = grown_items(self.ctx, stmt, target, [])
        if elements is None:
            model.complete = False
            return [Op("other", self.ctx.call_name(value) or "", value, target.attr, value)]
        ops: list[Op] = []
        for index, item in enumerate(elements):
            ops.extend(self._module_ops(item, f"{target.attr}.{index}", model))
        return ops


def module_op(name: str, call: ast.Call, path: str | None) -> Op | None:
    """An Op for a torch.nn module constructor call, or None when it is not a known module."""
    if name in WEIGHT_LAYERS:
        return Op("layer", name, call, path, call)
    if name in RECURRENT_LAYERS:
        return Op("recurrent", name, call, path, call)
    if name in NORM_LAYERS:
        return Op("norm", name, call, path, call)
    if name in DROPOUT_LAYERS:
        return Op("dropout", name, call, path, call)
    if name in ACTIVATION_MODULES:
        return Op("activation", ACTIVATION_MODULES[name], call, path, call)
    if name.startswith(NN) and name[len(NN) :][:1].isupper():
        return Op("other", name, call, path, call)
    return None


def activation_of_call(ctx: ScriptContext, call: ast.Call) -> str | None:
    """The canonical activation a call applies (`F.relu(x)`, `torch.softmax(x, 1)`, `x.tanh()`)."""
    name = ctx.call_name(call)
    if name in ACTIVATION_FUNCTIONS:
        return ACTIVATION_FUNCTIONS[name]
    if isinstance(call.func, ast.Attribute) and call.func.attr in ACTIVATION_METHODS:
        base = ctx.qualname(call.func.value)
        if base is None or base.split(".")[0] not in ("torch", "F", "nn"):
            return ACTIVATION_METHODS[call.func.attr]
    return None


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


class _FlowReader:
    """Reads `forward` in evaluation order and emits the ops it applies."""

    def __init__(self, index: ModelIndex, model: ModelDef, forward: ast.FunctionDef) -> None:
        self.index = index
        self.ctx = index.ctx
        self.model = model
        self.forward = forward
        self.loop_vars: dict[str, str] = {}  # loop variable -> submodule it iterates
        self.loop_items: dict[str, list[Op]] = {}  # loop variable -> ops of its current item
        self.emitted: dict[ast.AST, list[Op]] = {}

    def read(self) -> Iterator[Op]:
        ops: list[Op] = []
        body = self.forward.body
        for stmt in body:
            ops.extend(self._statement(stmt, branch=False))
        self.model.output = self._output(body)
        yield from ops

    def _statement(self, stmt: ast.stmt, branch: bool) -> list[Op]:
        ops: list[Op] = []
        if isinstance(stmt, ast.For) and isinstance(stmt.target, ast.Name | ast.Tuple):
            attr = _self_attr(stmt.iter) or _self_attr(_unwrap_enumerate(stmt.iter))
            if attr is not None and attr in self.model.submodules:
                var = stmt.target if isinstance(stmt.target, ast.Name) else stmt.target.elts[-1]
                if isinstance(var, ast.Name):
                    self.loop_vars[var.id] = attr
                    items = _container_items(self.model.submodules[attr], attr)
                    if items is not None:
                        # `for layer in self.layers: x = F.relu(layer(x))`: the body once per
                        # item, so each layer is followed by its own activation.
                        if _is_call_to(stmt.iter, "reversed"):
                            items.reverse()
                        # `outs.append(head(x))`: each item on its own path, not stacked.
                        parallel = len(items) > 1 and not _chained(stmt, var.id)
                        for item in items:
                            self.loop_items[var.id] = item
                            for inner in stmt.body:
                                ops.extend(self._statement(inner, branch or parallel))
                        del self.loop_items[var.id]
                        return ops
            for inner in stmt.body:
                ops.extend(self._statement(inner, branch))
            return ops
        if isinstance(stmt, ast.If | ast.Try | ast.While | ast.With):
            ops.extend(self._expression_ops(getattr(stmt, "test", None), branch))
            conditional = not isinstance(stmt, ast.With)
            for inner in _child_statements(stmt):
                ops.extend(self._statement(inner, branch or conditional))
            return ops
        if isinstance(stmt, ast.AugAssign) and isinstance(stmt.op, ast.Add):
            self.model.residual = True
        for node in walk(stmt):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
                if _tensorish(node.left) and _tensorish(node.right):
                    self.model.residual = True
        for child in children(stmt):
            if isinstance(child, ast.expr):
                ops.extend(self._expression_ops(child, branch))
        return ops

    def _expression_ops(self, expr: ast.expr | None, branch: bool) -> list[Op]:
        if expr is None:
            return []
        ops: list[Op] = []
        for node in _postorder(expr):
            if isinstance(node, ast.Call):
                emitted = self._call_ops(node, branch)
                self.emitted[node] = emitted
                ops.extend(emitted)
        return ops

    def _call_ops(self, call: ast.Call, branch: bool) -> list[Op]:
        attr = _self_attr(call.func)
        if attr is None and isinstance(call.func, ast.Subscript):
            attr = _self_attr(call.func.value)
        if isinstance(call.func, ast.Name) and call.func.id in self.loop_items:
            return [_in_branch(op, branch) for op in self.loop_items[call.func.id]]
        if attr is None and isinstance(call.func, ast.Name) and call.func.id in self.loop_vars:
            attr = self.loop_vars[call.func.id]
        if attr is not None:
            if attr in self.model.submodules:
                return [_in_branch(op, branch) for op in self.model.submodules[attr]]
            if not _is_method(self.model.node, attr):
                self.model.complete = False
            return []
        activation = activation_of_call(self.ctx, call)
        if activation is not None:
            return [Op("activation", activation, call, None, None, branch)]
        name = self.ctx.call_name(call) or ""
        if name in ("torch.nn.functional.dropout", "torch.dropout"):
            return [Op("dropout", name, call, None, None, branch)]
        if name in ("torch.cat", "torch.add", "torch.stack") and len(call.args) >= 1:
            if name == "torch.add":
                self.model.residual = True
        return []

    def _output(self, body: list[ast.stmt]) -> Op | None:
        """The last op applied to the returned value, when forward ends in one plain return."""
        if not body or not isinstance(body[-1], ast.Return) or body[-1].value is None:
            return None
        returns = [n for n in walk_statements(self.forward) if isinstance(n, ast.Return)]
        if len(returns) != 1:
            return None
        return self._last_op(body[-1].value, depth=0)

    def _last_op(self, expr: ast.expr, depth: int) -> Op | None:
        if depth > 12:
            return None
        if isinstance(expr, ast.Tuple):
            return None
        if isinstance(expr, ast.Name):
            value = self.ctx.definition(expr)
            return self._last_op(value, depth + 1) if value is not None else None
        if isinstance(expr, ast.Call):
            ops = self.emitted.get(expr)
            if ops:
                return ops[-1]
            # A shape op (view, flatten, squeeze) keeps the last op of its input.
            if isinstance(expr.func, ast.Attribute) and expr.func.attr in (
                "view",
                "reshape",
                "flatten",
                "squeeze",
                "unsqueeze",
                "contiguous",
                "float",
            ):
                return self._last_op(expr.func.value, depth + 1)
            name = self.ctx.call_name(expr) or ""
            if name in ("torch.flatten", "torch.squeeze", "torch.reshape") and expr.args:
                return self._last_op(expr.args[0], depth + 1)
        return None


def _in_branch(op: Op, branch: bool) -> Op:
    if not branch or op.branch:
        return op
    return Op(op.kind, op.name, op.node, op.path, op.call, True)


def _self_attr(expr: ast.AST | None) -> str | None:
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
    ):
        return expr.attr
    return None


def _container_items(ops: list[Op], attr: str) -> list[list[Op]] | None:
    """A ModuleList's or Sequential's ops split by item (`layers.0...`, `layers.1...`), in
    order; None when they do not all belong to numbered items."""
    items: dict[str, list[Op]] = {}
    for op in ops:
        rest = (op.path or "")[len(attr) + 1 :] if (op.path or "").startswith(attr + ".") else ""
        key = rest.split(".")[0]
        if not key.isdigit():
            return None
        items.setdefault(key, []).append(op)
    return list(items.values()) if 0 < len(items) <= 256 else None


def _chained(loop: ast.For, var: str) -> bool:
    """Whether a loop feeds each item's output to the next item: some name assigned in the body
    is read in the arguments of a call to the loop variable (`x = layer(x)`)."""
    assigned = {
        n.id
        for node in walk(loop)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for n in walk(target)
        if isinstance(n, ast.Name)
    }
    for node in walk(loop):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == var:
            arguments = [*node.args, *(kw.value for kw in node.keywords)]
            if any(
                isinstance(n, ast.Name) and n.id in assigned for a in arguments for n in walk(a)
            ):
                return True
    return False


def _is_call_to(expr: ast.expr, name: str) -> bool:
    return isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id == name


def _unwrap_enumerate(expr: ast.expr) -> ast.expr | None:
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.args:
        if expr.func.id in ("enumerate", "reversed"):
            return expr.args[0]
    return None


def _is_method(cls: ast.AST, name: str) -> bool:
    return isinstance(cls, ast.ClassDef) and _method(cls, name) is not None


def _tensorish(expr: ast.expr) -> bool:
    """An operand that is a value flowing through the network rather than a constant."""
    return isinstance(expr, ast.Name | ast.Call | ast.Attribute | ast.Subscript)


def _child_statements(stmt: ast.stmt) -> Iterator[ast.stmt]:
    for name in ("body", "orelse", "finalbody"):
        yield from getattr(stmt, name, [])
    for handler in getattr(stmt, "handlers", []):
        yield from handler.body


def _postorder(node: ast.AST) -> Iterator[ast.AST]:
    """Children before parents, left to right: the order Python evaluates nested calls in."""
    if isinstance(node, ast.Lambda | ast.FunctionDef):
        return
    for child in children(node):
        yield from _postorder(child)
    yield node
