"""NP104-NP107: the network's last layer and its loss must agree on who applies softmax/sigmoid.

PyTorch's losses each expect one kind of input: CrossEntropyLoss and BCEWithLogitsLoss raw logits,
BCELoss probabilities, NLLLoss log-probabilities. A script that gets this wrong still runs and the
loss still falls a little, so nothing tells the user. Each loss call is traced backwards through
its input: activations written at the call site, local variables, and into the model (the tail of
an `nn.Sequential`, the value `forward` returns, submodules and factories), until a weight layer
is reached. A finding points at the evidence (the softmax, the sigmoid, the loss) and names the
other end; whenever a step of the path is not statically known, the rules stay silent.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from nnprobe.core.finding import Confidence, Edit, Finding, Fix, Position, Range, Severity
from nnprobe.core.registry import register
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import ScriptContext
from nnprobe.inspectors.script.models import (
    ACTIVATION_FUNCTIONS,
    DROPOUT_LAYERS,
    NN,
    WEIGHT_LAYERS,
    ModelDef,
    activation_of_call,
    module_op,
)
from nnprobe.inspectors.script.values import UNKNOWN
from nnprobe.inspectors.script.walk import walk, walk_statements

F = "torch.nn.functional."
# Loss constructors and functions, by the input they expect.
LOSS_MODULES = {
    NN + "CrossEntropyLoss": "ce",
    NN + "BCEWithLogitsLoss": "bce_logits",
    NN + "BCELoss": "bce",
    NN + "NLLLoss": "nll",
    NN + "MSELoss": "regression",
    NN + "L1Loss": "regression",
    NN + "SmoothL1Loss": "regression",
    NN + "HuberLoss": "regression",
}
LOSS_FUNCTIONS = {
    F + "cross_entropy": "ce",
    F + "binary_cross_entropy_with_logits": "bce_logits",
    "torch.binary_cross_entropy_with_logits": "bce_logits",
    F + "binary_cross_entropy": "bce",
    F + "nll_loss": "nll",
    F + "mse_loss": "regression",
    F + "l1_loss": "regression",
    F + "smooth_l1_loss": "regression",
    F + "huber_loss": "regression",
}
# The spelling a fix swaps a loss for, and the name the message uses for it.
_BETTER_LOSS = {
    "BCELoss": "BCEWithLogitsLoss",
    "binary_cross_entropy": "binary_cross_entropy_with_logits",
    "NLLLoss": "CrossEntropyLoss",
    "nll_loss": "cross_entropy",
}
# Tensor methods and torch functions that keep what the values went through (shape or dtype only).
_RESHAPE_METHODS = frozenset(
    {
        "view",
        "reshape",
        "flatten",
        "squeeze",
        "unsqueeze",
        "permute",
        "transpose",
        "view_as",
        "reshape_as",
    }
)
_KEEP_METHODS = frozenset(
    {"contiguous", "float", "double", "half", "bfloat16", "to", "cuda", "cpu", "type_as"}
)
_CLAMP_METHODS = frozenset({"clamp", "clip", "clamp_", "clip_"})
_RESHAPE_FUNCTIONS = frozenset(
    {
        "torch.flatten",
        "torch.squeeze",
        "torch.unsqueeze",
        "torch.reshape",
        "torch.permute",
        "torch.transpose",
    }
)
_CLAMP_FUNCTIONS = frozenset({"torch.clamp", "torch.clip"})
_TRANSPARENT_MODULES = DROPOUT_LAYERS | {NN + "Identity"}
_RESHAPE_MODULES = frozenset({NN + "Flatten", NN + "Unflatten"})
_LINEAR_OUT = {NN + "Linear": ("out_features", 1), NN + "LazyLinear": ("out_features", 0)}
_STRUCTURE_METHODS = frozenset(
    {"append", "extend", "insert", "add_module", "register_module", "pop", "__setitem__"}
)
# Module methods that return the module itself: `Net().to(device)`.
_MODULE_PASSTHROUGH = frozenset(
    {"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train", "eval", "requires_grad_"}
)
# Calls that wrap a model and return what it returns.
_WRAPPERS = frozenset(
    {
        "torch.compile",
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.jit.script",
    }
)
_PARAMETER_ATTRS = frozenset({"weight", "bias", "data", "grad", "requires_grad", "training"})
_MAX_DEPTH = 40


@dataclass
class Step:
    """One thing the loss input went through, nearest to the loss first."""

    kind: str  # "activation" | "layer"
    name: str  # canonical activation ("softmax") or the layer's qualified class
    node: ast.AST  # the activation call, or the module's constructor call
    in_model: bool  # written inside the model: removing it changes what the model returns
    use: ast.Call | None = None  # where a module built elsewhere is applied: `self.act(x)`
    holder: ast.Name | None = None  # a local variable the result was read from, at the site
    reshaped: bool = False  # a view/flatten/permute sits between this step and the next one
    composite: bool = False  # `torch.log(softmax(x))`, read as one log_softmax


@dataclass
class Trace:
    steps: list[Step] = field(default_factory=list)
    layer: bool = False  # ended at a weight layer with every step on the way known
    clamped: bool = False  # a clamp/clip sits between the loss and the first step

    @property
    def first(self) -> Step | None:
        return self.steps[0] if self.steps else None

    @property
    def last_layer(self) -> Step | None:
        """The weight layer that produced the values, when only activations lie after it."""
        if self.layer and self.steps and all(s.kind == "activation" for s in self.steps[:-1]):
            return self.steps[-1]
        return None


@dataclass
class LossUse:
    call: ast.Call  # `criterion(out, y)` or `F.cross_entropy(out, y)`
    kind: str  # "ce" | "bce_logits" | "bce" | "nll" | "regression"
    label: str  # "CrossEntropyLoss", "F.cross_entropy"
    ctor: ast.Call | None  # the loss module's constructor, when it is one known call
    input: ast.expr
    target: ast.expr | None
    trace: Trace


# ---------------------------------------------------------------------- reading the script


def _statement(ctx: ScriptContext, node: ast.AST) -> ast.stmt | None:
    current: ast.AST | None = node
    while current is not None and not isinstance(current, ast.stmt):
        current = ctx.parent(current)
    return current


Slot = tuple[ast.AST, str, int]  # (parent, field, index): where a statement sits in its block


def _new_slots(ctx: ScriptContext) -> dict[ast.AST, Slot | None]:
    return {}


def _slot(ctx: ScriptContext, stmt: ast.AST) -> Slot | None:
    slots = ctx.shared(_new_slots)
    if stmt not in slots:
        parent = ctx.parent(stmt)
        for name in ("body", "orelse", "finalbody"):
            block = getattr(parent, name, None)
            if parent is not None and isinstance(block, list):
                for index, child in enumerate(block):
                    slots[child] = (parent, name, index)
        slots.setdefault(stmt, None)
    return slots[stmt]


def _position(node: ast.AST) -> tuple[int, int]:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.Module)


def definition(ctx: ScriptContext, name: ast.Name) -> ast.expr | None:
    """The expression a name holds where it is read, when one assignment reaches it for sure.

    The assignment must sit earlier in the same block as the reading statement (or a block around
    it), with no other binding of the name between them, nor in a loop around the reading that
    the assignment is outside of. `x = f(x)` reads the previous `x`, not itself.
    """
    bindings = ctx.bindings(name.id, name)
    if not bindings:
        return None
    use_stmt = _statement(ctx, name)
    if use_stmt is None:
        return None
    candidate = None
    stmt: ast.AST | None = use_stmt
    while isinstance(stmt, ast.stmt) and candidate is None:
        slot = _slot(ctx, stmt)
        if slot is not None:
            earlier = []
            for binding in bindings:
                place = _slot(ctx, binding.node) if isinstance(binding.node, ast.stmt) else None
                if place is not None and place[:2] == slot[:2] and place[2] < slot[2]:
                    earlier.append(binding)
            if earlier:
                candidate = max(earlier, key=lambda b: _position(b.node))
                break
        parent = ctx.parent(stmt)
        if parent is None or isinstance(parent, _SCOPES):
            break
        stmt = parent
        while stmt is not None and not isinstance(stmt, ast.stmt):
            stmt = ctx.parent(stmt)
    if candidate is None:
        if len(bindings) == 1 and bindings[0].kind == "assign":
            binding = bindings[0]
            if binding.node is not use_stmt and isinstance(binding.node, ast.stmt):
                return binding.value
        return None
    if candidate.kind != "assign" or not isinstance(candidate.node, ast.stmt):
        return None
    loops = []
    for ancestor in ctx.ancestors(name):
        if ancestor is ctx.parent(candidate.node):
            break
        if isinstance(ancestor, _LOOPS):
            loops.append(ancestor)
    start, end = _position(candidate.node), _position(use_stmt)
    for other in bindings:
        if other is candidate:
            continue
        if start < _position(_statement(ctx, other.node) or other.node) < end:
            return None
        if any(other.node is loop or _inside(ctx, other.node, loop) for loop in loops):
            return None
    return candidate.value


def _inside(ctx: ScriptContext, node: ast.AST, outer: ast.AST) -> bool:
    return any(a is outer for a in ctx.ancestors(node))


def resolve(ctx: ScriptContext, expr: ast.expr, depth: int = 8) -> ast.expr:
    while depth and isinstance(expr, ast.Name):
        value = definition(ctx, expr)
        if value is None:
            break
        expr, depth = value, depth - 1
    return expr


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | None:
    for stmt in cls.body:
        if isinstance(stmt, ast.FunctionDef) and stmt.name == name:
            return stmt
    return None


def self_assignments(cls: ast.ClassDef) -> dict[str, list[ast.expr | None]]:
    """Every value each `self.<attr>` is assigned in the class's methods (None for `+=` and
    annotations without a value)."""
    found: dict[str, list[ast.expr | None]] = {}
    for method in cls.body:
        if not isinstance(method, ast.FunctionDef):
            continue
        for node in walk_statements(method):
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign):
                targets, value = [node.target], node.value
            elif isinstance(node, ast.AugAssign):
                targets = [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    found.setdefault(target.attr, []).append(value)
    return found


def _self_attr(ctx: ScriptContext, expr: ast.expr) -> tuple[ast.ClassDef, str] | None:
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
    ):
        cls = ctx.enclosing_class(expr)
        if cls is not None:
            return cls, expr.attr
    return None


# ---------------------------------------------------------------------- tracing


class Tracer:
    """Follows a tensor expression backwards to the weight layer that produced it."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self._mutated: set[ast.AST] | None = None
        self._grown: set[str] | None = None
        self._self_values: dict[ast.ClassDef, dict[str, list[ast.expr | None]]] = {}
        self._callers: dict[str, list[ast.Call]] | None = None

    def self_value(self, cls: ast.ClassDef, attr: str) -> ast.expr | None:
        """The one value `self.<attr>` is assigned anywhere in the class, else None."""
        if cls not in self._self_values:
            self._self_values[cls] = self_assignments(cls)
        values = self._self_values[cls].get(attr, [])
        return values[0] if len(values) == 1 else None

    def argument_values(self, name: ast.Name) -> list[ast.expr] | None:
        """What the callers pass for a plain function's parameter: `def train(model, criterion)`."""
        ctx = self.ctx
        bindings = ctx.bindings(name.id, name)
        if len(bindings) != 1 or bindings[0].kind != "param" or bindings[0].value is not None:
            return None
        fn = bindings[0].scope
        if not isinstance(fn, ast.FunctionDef) or ctx.enclosing_class(fn) is not None:
            return None
        if len(ctx.functions.get(fn.name, [])) != 1:
            return None
        if self._callers is None:
            self._callers = {}
            for call in ctx.calls:
                if isinstance(call.func, ast.Name):
                    self._callers.setdefault(call.func.id, []).append(call)
        positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
        position = positional.index(name.id) if name.id in positional else None
        values = []
        for call in self._callers.get(fn.name, []):
            if ctx.has_kwargs_splat(call):
                return None
            value = ctx.argument(call, name.id, position)
            if value is None:
                return None
            values.append(value)
        return values or None

    def trace(self, expr: ast.expr) -> Trace:
        trace = Trace()
        trace.layer = self._expr(expr, trace, in_model=False, depth=0)
        return trace

    def trace_model(self, node: ast.AST) -> Trace:
        """What a model (a ClassDef or an nn.Sequential call) returns."""
        trace = Trace()
        if isinstance(node, ast.ClassDef):
            trace.layer = self._forward(node, trace, 0)
        elif isinstance(node, ast.Call):
            trace.layer = self._module(node, trace, None, None, True, 0) == "layer"
        return trace

    def _mark_reshaped(self, trace: Trace) -> None:
        if trace.steps:
            trace.steps[-1].reshaped = True

    def _expr(self, expr: ast.expr, trace: Trace, in_model: bool, depth: int) -> bool:
        """True when the expression's values come from a weight layer through known steps only."""
        if depth > _MAX_DEPTH or len(trace.steps) > 6:
            return False
        ctx = self.ctx
        if isinstance(expr, ast.Name):
            value = definition(ctx, expr)
            if value is None:
                return False
            first = not trace.steps
            reached = self._expr(value, trace, in_model, depth + 1)
            if first and not in_model and trace.steps and trace.steps[0].holder is None:
                trace.steps[0].holder = expr  # the loss reads the activation's result from `expr`
            return reached
        if isinstance(expr, ast.Subscript):
            self._mark_reshaped(trace)
            return self._expr(expr.value, trace, in_model, depth + 1)
        if not isinstance(expr, ast.Call) or ctx.has_kwargs_splat(expr):
            return False
        return self._call(expr, trace, in_model, depth)

    def _call(self, call: ast.Call, trace: Trace, in_model: bool, depth: int) -> bool:
        ctx = self.ctx
        func = call.func
        owner = _self_attr(ctx, func)
        if owner is not None and self.self_value(*owner) is not None:
            return self._applied(call, trace, in_model, depth)  # `self.softmax(x)`: a submodule
        activation = activation_of_call(ctx, call)
        if activation is not None:
            source = _activation_input(ctx, call)
            if source is None:
                return False
            trace.steps.append(Step("activation", activation, call, in_model))
            return self._expr(source, trace, in_model, depth + 1)
        name = ctx.call_name(call) or ""
        if isinstance(func, ast.Attribute):
            if func.attr in _RESHAPE_METHODS | _KEEP_METHODS | _CLAMP_METHODS and not (
                name.startswith("torch.")
            ):
                if func.attr in _RESHAPE_METHODS:
                    self._mark_reshaped(trace)
                if func.attr in _CLAMP_METHODS and not trace.steps:
                    trace.clamped = True
                return self._expr(func.value, trace, in_model, depth + 1)
            if func.attr == "log" and not name.startswith("torch."):
                return self._log(call, func.value, trace, in_model, depth)
        if name in _RESHAPE_FUNCTIONS | _CLAMP_FUNCTIONS:
            source = ctx.argument(call, "input", 0)
            if source is None:
                return False
            if name in _RESHAPE_FUNCTIONS:
                self._mark_reshaped(trace)
            elif not trace.steps:
                trace.clamped = True
            return self._expr(source, trace, in_model, depth + 1)
        if name == "torch.log":
            source = ctx.argument(call, "input", 0)
            return source is not None and self._log(call, source, trace, in_model, depth)
        return self._applied(call, trace, in_model, depth)

    def _log(
        self, call: ast.Call, source: ast.expr, trace: Trace, in_model: bool, depth: int
    ) -> bool:
        """`torch.log(F.softmax(x))`: an (unstable) log_softmax; log of anything else is opaque."""
        inner = Trace()
        reached = self._expr(source, inner, in_model, depth + 1)
        if inner.first is None or inner.first.name != "softmax":
            return False
        trace.steps.append(Step("activation", "log_softmax", call, in_model, composite=True))
        trace.steps.extend(inner.steps[1:])
        return reached

    def _applied(self, call: ast.Call, trace: Trace, in_model: bool, depth: int) -> bool:
        """A module applied to a value: `model(x)`, `self.fc(x)`, `self(x)`, `nn.Softmax(1)(x)`."""
        ctx = self.ctx
        func = call.func
        source = call.args[0] if len(call.args) == 1 and not call.keywords else None
        if isinstance(func, ast.Attribute) and func.attr == "forward":
            func = func.value
        if isinstance(func, ast.Name) and func.id == "self":
            cls = ctx.enclosing_class(call)
            if cls is None or cls.name not in ctx.models.module_classes:
                return False
            return self._forward(cls, trace, depth + 1)
        module: ast.expr | None = None
        owner = _self_attr(ctx, func)
        if owner is not None:
            module = self.self_value(*owner)
        elif isinstance(func, ast.Name):
            module = resolve(ctx, func)
            if isinstance(module, ast.Name):
                return self._parameter_model(module, trace, call, depth)
        elif isinstance(func, ast.Call):
            module = func
        if module is None:
            return False
        result = self._module(module, trace, call, source, in_model, depth + 1)
        if result == "pass":
            return source is not None and self._expr(source, trace, in_model, depth + 1)
        return result == "layer"

    def _parameter_model(self, name: ast.Name, trace: Trace, call: ast.Call, depth: int) -> bool:
        """`model(x)` where `model` is a function parameter (`def train(model, ...)`): the model
        every caller passes, or, when no call is found, the file's only root model (as
        ModelIndex.the_model decides)."""
        models = self.ctx.models
        passed = self.argument_values(name)
        if passed is None:
            model = models.the_model(name)
        else:  # every caller's argument must be the same model
            given = [self._unwrapped_model(v) for v in passed]
            found = {id(m.node): m for m in given if m is not None}
            model = next(iter(found.values())) if len(found) == 1 and all(given) else None
        if model is None or model.node in self.mutated:
            return False
        if isinstance(model.node, ast.ClassDef):
            return self._forward(model.node, trace, depth + 1)
        if isinstance(model.node, ast.Call):
            return self._module(model.node, trace, call, None, True, depth + 1) == "layer"
        return False

    def _unwrapped_model(self, expr: ast.expr) -> ModelDef | None:
        """The model an argument is, through `torch.compile(...)`, `DataParallel(...)`, `.to()`."""
        for _ in range(8):
            expr = resolve(self.ctx, expr)
            if not isinstance(expr, ast.Call):
                break
            if self.ctx.call_name(expr) in _WRAPPERS and expr.args:
                expr = expr.args[0]
            elif isinstance(expr.func, ast.Attribute) and expr.func.attr in _MODULE_PASSTHROUGH:
                expr = expr.func.value
            else:
                break
        return self.ctx.models.the_model(expr)

    def _module(
        self,
        module: ast.expr,
        trace: Trace,
        use: ast.Call | None,
        source: ast.expr | None,
        in_model: bool,
        depth: int,
    ) -> str:
        """Walks a module backwards: "layer" (reached a weight layer), "pass" (went through it
        to its input) or "unknown"."""
        ctx = self.ctx
        if depth > _MAX_DEPTH:
            return "unknown"
        module = resolve(ctx, module)
        while (
            isinstance(module, ast.Call)
            and isinstance(module.func, ast.Attribute)
            and module.func.attr in _MODULE_PASSTHROUGH
        ):
            module = resolve(ctx, module.func.value)
        if not isinstance(module, ast.Call):
            return "unknown"
        name = ctx.call_name(module) or ""
        if name in _WRAPPERS and module.args:
            return self._module(module.args[0], trace, use, source, in_model, depth + 1)
        if name != NN + "Sequential" and ctx.has_kwargs_splat(module):
            return "unknown"
        if name == NN + "Sequential":
            if module in self.mutated:
                return "unknown"
            entries = self._entries(module)
            if entries is None:
                return "unknown"
            for entry in reversed(entries):
                result = self._module(entry, trace, None, None, True, depth + 1)
                if result != "pass":
                    return result
            return "pass"
        if name in WEIGHT_LAYERS:
            trace.steps.append(Step("layer", name, module, True, use))
            return "layer"
        if name in _TRANSPARENT_MODULES:
            return "pass"
        if name in _RESHAPE_MODULES:
            self._mark_reshaped(trace)
            return "pass"
        op = module_op(name, module, None)
        if op is not None:
            if op.kind != "activation":
                return "unknown"
            trace.steps.append(Step("activation", op.name, module, in_model, use))
            return "pass"
        if isinstance(module.func, ast.Name) and module.func.id in ctx.models.module_classes:
            cls = ctx.models.module_classes[module.func.id]
            return "layer" if self._forward(cls, trace, depth + 1) else "unknown"
        returned = ctx.returned(module)
        if returned is not None and returned is not module:
            return self._module(returned, trace, use, source, in_model, depth + 1)
        return "unknown"

    def _entries(self, sequential: ast.Call) -> list[ast.expr] | None:
        """The modules of an nn.Sequential in order, or None when some cannot be listed."""
        ctx = self.ctx
        args = sequential.args
        if sequential.keywords:
            return None
        if len(args) == 1 and isinstance(args[0], ast.Call):
            inner = args[0]
            if ctx.call_name(inner) in ("collections.OrderedDict", "OrderedDict"):
                if len(inner.args) != 1 or not isinstance(inner.args[0], ast.List | ast.Tuple):
                    return None
                entries = []
                for item in inner.args[0].elts:
                    if not (isinstance(item, ast.Tuple) and len(item.elts) == 2):
                        return None
                    entries.append(item.elts[1])
                return entries
        entries = []
        for arg in args:
            if isinstance(arg, ast.Starred):
                if isinstance(arg.value, ast.Name) and arg.value.id in self.grown_names:
                    return None
                listed = resolve(ctx, arg.value)
                if not isinstance(listed, ast.List | ast.Tuple):
                    return None
                if any(isinstance(e, ast.Starred) for e in listed.elts):
                    return None
                entries.extend(listed.elts)
            else:
                entries.append(arg)
        return entries

    def _forward(self, cls: ast.ClassDef, trace: Trace, depth: int) -> bool:
        """What a module class's forward returns, when it ends in its only return."""
        if cls in self.mutated or depth > _MAX_DEPTH:
            return False
        forward = _method(cls, "forward")
        if forward is None or not forward.body:
            return False
        returns = [
            node
            for node in walk_statements(forward)
            if isinstance(node, ast.Return) and self.ctx.enclosing_function(node) is forward
        ]
        last = forward.body[-1]
        if len(returns) != 1 or returns[0] is not last or last.value is None:
            return False
        return self._expr(last.value, trace, True, depth + 1)

    @property
    def mutated(self) -> set[ast.AST]:
        """Models whose structure the script changes after building them (`model.fc = ...`,
        `model.append(...)`): their definition no longer says what they return."""
        if self._mutated is None:
            self._mutated = set()
            for root in self._mutation_roots():
                value: ast.expr | None = root
                owner = _self_attr(self.ctx, root)
                if owner is not None:
                    value = self.self_value(*owner)
                model = self.ctx.models.for_expr(value) if value is not None else None
                if model is not None:
                    self._mutated.add(model.node)
        return self._mutated

    @property
    def grown_names(self) -> set[str]:
        """Names of lists (or anything) changed in place somewhere: `layers.append(...)`,
        `layers += [...]`, `layers[-1] = ...`; a `*layers` of one of them is not a known list."""
        if self._grown is None:
            self._grown = {r.id for r in self._mutation_roots() if isinstance(r, ast.Name)}
            for stmt in self.ctx.nodes(ast.AugAssign):
                if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name):
                    self._grown.add(stmt.target.id)
        return self._grown

    def _mutation_roots(self) -> Iterator[ast.expr]:
        """What in-place changes touch: a Name (`model.fc = ...`, `layers.append(...)`), or a
        `self.<attr>` Attribute (`self.net.add_module(...)`, `self.net[-1] = ...`)."""
        targets: list[tuple[ast.expr, bool]] = []  # (target, called a structure method on it)
        for stmt in self.ctx.nodes(ast.Assign, ast.AnnAssign, ast.AugAssign):
            if isinstance(stmt, ast.Assign):
                targets.extend((t, False) for t in stmt.targets)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
                targets.append((stmt.target, False))
        for call in self.ctx.calls:
            if isinstance(call.func, ast.Attribute) and call.func.attr in _STRUCTURE_METHODS:
                targets.append((call.func.value, True))
            elif isinstance(call.func, ast.Name) and call.func.id in ("setattr", "delattr"):
                if call.args:
                    targets.append((call.args[0], True))
        for target, called in targets:
            if isinstance(target, ast.Attribute) and target.attr in _PARAMETER_ATTRS:
                continue
            chain = [target]
            while isinstance(chain[-1], ast.Attribute | ast.Subscript):
                chain.append(chain[-1].value)
            root = chain[-1]
            if not isinstance(root, ast.Name) or not (called or root is not target):
                continue
            if root.id != "self":
                yield root
            elif len(chain) >= 2 and isinstance(chain[-2], ast.Attribute):
                if called or chain[-2] is not target:  # `self.net = ...` just defines it
                    yield chain[-2]


def _activation_input(ctx: ScriptContext, call: ast.Call) -> ast.expr | None:
    if ctx.call_name(call) in ACTIVATION_FUNCTIONS:
        return ctx.argument(call, "input", 0)
    if isinstance(call.func, ast.Attribute):
        return call.func.value
    return None


# ---------------------------------------------------------------------- loss uses


class Analysis:
    """Every loss use in a script with its traced input, and every model's traced output."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self.tracer = Tracer(ctx)
        self._ctors = [c for c in ctx.calls if ctx.call_name(c) in LOSS_MODULES]
        self.uses = list(self._uses())

    def _uses(self) -> Iterator[LossUse]:
        ctx = self.ctx
        for call in ctx.calls:
            if ctx.has_kwargs_splat(call):
                continue
            # Every loss nnprobe knows takes (input, target): single-argument calls are skipped
            # before the costlier question of what the callee is.
            source = ctx.argument(call, "input", 0)
            target = ctx.argument(call, "target", 1)
            if source is None or target is None:
                continue
            loss = self._loss_of(call)
            if loss is None:
                continue
            kind, label, ctor = loss
            yield LossUse(call, kind, label, ctor, source, target, self.tracer.trace(source))

    def _loss_of(self, call: ast.Call) -> tuple[str, str, ast.Call | None] | None:
        """(kind, label, constructor) when `call` computes a loss."""
        ctx = self.ctx
        name = ctx.call_name(call)
        if name in LOSS_FUNCTIONS:
            return LOSS_FUNCTIONS[name], ctx.source(call.func), None
        if not self._ctors or name in LOSS_MODULES:
            return None
        ctors = self._constructors(call.func, 0)
        quals = {ctx.call_name(c) or "" for c in ctors}
        if len(quals) != 1:
            return None
        qual = quals.pop()
        ctor = ctors[0] if all(c is ctors[0] for c in ctors) else None
        return LOSS_MODULES[qual], qual.rsplit(".", 1)[-1], ctor

    def _constructors(self, func: ast.expr, depth: int) -> list[ast.Call]:
        """The loss constructor calls a callee can be: `criterion`, `self.loss_fn`, a parameter
        every caller passes a loss module to, `nn.CrossEntropyLoss()` itself."""
        ctx = self.ctx
        if depth > 4:
            return []
        if isinstance(func, ast.Call):
            if isinstance(func.func, ast.Attribute) and func.func.attr in _MODULE_PASSTHROUGH:
                return self._constructors(func.func.value, depth + 1)  # `.to(device)`
            return [func] if ctx.call_name(func) in LOSS_MODULES else []
        owner = _self_attr(ctx, func)
        if owner is not None:
            value = self.tracer.self_value(*owner)
            return self._constructors(value, depth + 1) if value is not None else []
        if not isinstance(func, ast.Name):
            return []
        value = resolve(ctx, func)
        if isinstance(value, ast.Call):
            return self._constructors(value, depth + 1)
        if not isinstance(value, ast.Name):
            return []
        passed = self.tracer.argument_values(value)
        found: list[ast.Call] = []
        for arg in passed or []:
            ctors = self._constructors(arg, depth + 1)
            if not ctors:
                return []
            found.extend(ctors)
        return found

    @property
    def model_traces(self) -> Iterator[Trace]:
        for model in self.ctx.models.all:
            yield self.tracer.trace_model(model.node)


def analysis(ctx: ScriptContext) -> Analysis:
    """One analysis per parsed script, shared by NP104-NP107."""
    return ctx.shared(Analysis)


# ---------------------------------------------------------------------- fixes


_ATOMS = (ast.Name, ast.Attribute, ast.Call, ast.Subscript, ast.Constant)


def _unwrap_edit(ctx: ScriptContext, call: ast.Call, inner: ast.expr) -> Edit:
    """Replace `call` by its input expression, in parentheses where precedence needs them."""
    text = ctx.source(inner)
    parent = ctx.parent(call)
    bare_ok = isinstance(parent, ast.Call | ast.Return | ast.Assign | ast.keyword) and not (
        isinstance(parent, ast.Call) and parent.func is call
    )
    if not isinstance(inner, _ATOMS) and not bare_ok:
        text = f"({text})"
    return ctx.replace(call, text)


def _remove_entry_edit(ctx: ScriptContext, entry: ast.expr, siblings: list[ast.expr]) -> Edit:
    """Delete one element of a call's argument list or a list, with its comma; a whole line when
    the element stands alone on it."""
    index = next(i for i, s in enumerate(siblings) if s is entry)
    start_line, end_line = entry.lineno, entry.end_lineno or entry.lineno
    first, last = (ctx.lines[n - 1].encode("utf-8") for n in (start_line, end_line))
    before = first[: entry.col_offset].strip()  # AST offsets count UTF-8 bytes
    rest = last[entry.end_col_offset or 0 :].decode("utf-8", "replace").strip()
    if rest.startswith(","):
        rest = rest[1:].strip()
    alone = not before and (not rest or rest.startswith("#"))
    if alone and end_line < len(ctx.lines):
        return Edit(Range(Position(start_line, 1), Position(end_line + 1, 1)), "")
    if index > 0:
        return Edit(_between(ctx, siblings[index - 1], entry), "")
    if index + 1 < len(siblings):
        following = siblings[index + 1]
        return Edit(Range(ctx.range_of(entry).start, ctx.range_of(following).start), "")
    return ctx.replace(entry, "")


def _between(ctx: ScriptContext, previous: ast.AST, entry: ast.AST) -> Range:
    return Range(ctx.range_of(previous).end, ctx.range_of(entry).end)


def _has_other_reads(ctx: ScriptContext, holder: ast.Name) -> bool:
    scope = ctx.enclosing_function(holder) or ctx.tree
    reads = [
        n
        for n in walk(scope)
        if isinstance(n, ast.Name) and n.id == holder.id and isinstance(n.ctx, ast.Load)
    ]
    return len(reads) > 1


def _listing(ctx: ScriptContext, node: ast.expr) -> tuple[ast.expr, list[ast.expr]] | None:
    """The element holding a module in a Sequential's argument list, an OrderedDict entry list or
    a list of layers, and its siblings there."""
    parent = ctx.parent(node)
    if isinstance(parent, ast.Call) and ctx.call_name(parent) == NN + "Sequential":
        return (node, parent.args) if any(a is node for a in parent.args) else None
    if isinstance(parent, ast.Tuple) and len(parent.elts) == 2 and parent.elts[1] is node:
        outer = ctx.parent(parent)
        if isinstance(outer, ast.List | ast.Tuple):
            return parent, outer.elts
        return None
    if isinstance(parent, ast.List | ast.Tuple) and isinstance(ctx.parent(parent), ast.Assign):
        return node, parent.elts
    return None


def drop_activation_fix(ctx: ScriptContext, step: Step, what: str) -> Fix | None:
    """Removes the activation a step names, keeping the value it was applied to."""
    if step.composite:
        return None
    unsafe = step.in_model or (step.holder is not None and _has_other_reads(ctx, step.holder))
    applicability = "unsafe" if unsafe else "safe"
    message = f"remove the {what}"
    node = step.node
    if not isinstance(node, ast.Call):
        return None
    if step.use is not None:
        if len(step.use.args) != 1 or step.use.keywords:
            return None
        edit = _unwrap_edit(ctx, step.use, step.use.args[0])
        return Fix(message, (edit,), applicability)
    listing = _listing(ctx, node)
    if listing is not None:
        entry, siblings = listing
        return Fix(message, (_remove_entry_edit(ctx, entry, siblings),), "unsafe")
    source = _activation_input(ctx, node)
    if source is None or activation_of_call(ctx, node) is None:
        return None
    return Fix(message, (_unwrap_edit(ctx, node, source),), applicability)


def rename_fix(
    ctx: ScriptContext, call: ast.Call, new: str, message: str, safe: bool
) -> Fix | None:
    """`F.softmax(` -> `F.log_softmax(`, `nn.BCELoss(` -> `nn.BCEWithLogitsLoss(`: the last part
    of a dotted callee swapped in place (a bare imported name would need a new import)."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.end_lineno is None:
        return None
    end = ctx.range_of(func).end
    start = Position(end.line, end.column - len(func.attr))
    line = ctx.lines[end.line - 1]
    if line[start.column - 1 : end.column - 1] != func.attr:
        return None
    edit = Edit(Range(start, end), new)
    return Fix(message, (edit,), "safe" if safe else "unsafe")


# ---------------------------------------------------------------------- the rules


def _lines(calls: Iterable[ast.Call]) -> str:
    numbers = sorted({c.lineno for c in calls})
    if len(numbers) == 1:
        return f"line {numbers[0]}"
    return "lines " + ", ".join(str(n) for n in numbers[:3]) + (", ..." if len(numbers) > 3 else "")


def _where(step: Step) -> str:
    return "in the model" if step.in_model else "at the call site"


def _grouped(
    uses: Iterable[LossUse], kinds: set[str], names: set[str]
) -> dict[ast.AST, tuple[Step, list[LossUse]]]:
    """Loss uses whose input last went through one of `names`, grouped by that activation."""
    groups: dict[ast.AST, tuple[Step, list[LossUse]]] = {}
    for use in uses:
        first = use.trace.first
        if use.kind in kinds and first is not None and first.kind == "activation":
            if first.name in names:
                groups.setdefault(first.node, (first, []))[1].append(use)
    return groups


def _layer_line(step: Step) -> str:
    return f"{step.name.rsplit('.', 1)[-1]} on line {getattr(step.node, 'lineno', '?')}"


@register
class SoftmaxBeforeCrossEntropy(StaticRule):
    """
    ## What it does
    Finds a softmax or log_softmax applied to the values that reach `nn.CrossEntropyLoss` or
    `F.cross_entropy`: at the call site, on a local variable, as the last module of an
    `nn.Sequential`, or as what the model's `forward` returns.

    ## Why is this bad?
    Cross-entropy applies log_softmax to its input itself and expects unnormalized logits. Fed
    probabilities, it computes log_softmax(softmax(z)): every input lies in [0, 1], so even a
    perfect prediction over 10 classes costs log(9 + e) - 1 = 1.46 instead of 0, and the gradients
    shrink as the softmax saturates. Training stalls or crawls with no error.

    A log_softmax before cross-entropy (a double log-softmax) gives the same loss and gradients,
    because log_softmax is idempotent, so it is reported as a warning: it is redundant work, and a
    sign the model was written for `NLLLoss` and the two ends disagree about it.

    ## Example
    ```python
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return F.softmax(self.fc(x), dim=1)  # error: [NP104]

    model = Net()
    criterion = nn.CrossEntropyLoss()
    loss = criterion(model(x), y)
    ```

    ## How to fix
    Return the logits and apply softmax only where probabilities are needed (prediction,
    calibration); `argmax` of the logits is the same class. The fix removes the softmax: at the
    call site it is safe; in the model it is marked unsafe, since code that reads the model's
    output as probabilities changes too.

    ## Options
    None.

    ## References
    - PyTorch docs, `torch.nn.CrossEntropyLoss`: "The input is expected to contain the
      unnormalized logits for each class"
    - AUTOTRAINER (Zhang et al., ICSE 2021), output layer and loss table
    """

    code = "NP104"
    name = "softmax-before-cross-entropy"
    message = (
        "{activation} {where} feeds {loss} ({lines}), which applies log_softmax itself: "
        "pass the raw logits and keep softmax for predictions"
    )
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        groups = _grouped(analysis(ctx).uses, {"ce"}, {"softmax", "log_softmax"})
        for node, (step, uses) in groups.items():
            loss, lines = uses[0].label, _lines(u.call for u in uses)
            if step.name == "log_softmax":
                message = (
                    f"log_softmax {_where(step)} feeds {loss} ({lines}), which applies "
                    "log_softmax again (a double log-softmax): the loss is unchanged but the "
                    "step is redundant and shows the output was meant for NLLLoss; pass the raw "
                    "logits, or keep log_softmax and use NLLLoss"
                )
                severity: Severity | None = Severity.WARNING
            else:
                message = self.message.format(
                    activation="softmax", where=_where(step), loss=loss, lines=lines
                )
                severity = None
            fix = drop_activation_fix(ctx, step, step.name)
            yield self.report(ctx, node, message=message, severity=severity, fix=fix)


@register
class SigmoidBeforeBceWithLogits(StaticRule):
    """
    ## What it does
    Finds a sigmoid applied to the values that reach `nn.BCEWithLogitsLoss` or
    `F.binary_cross_entropy_with_logits`, at the call site or as the model's last step.

    ## Why is this bad?
    BCEWithLogitsLoss applies the sigmoid itself. Given probabilities it computes
    sigmoid(sigmoid(z)), which only spans (0.5, 0.73): a positive example never costs less than
    0.31 and a negative one never less than log 2 = 0.69, whatever the model predicts, and the
    gradient is damped by two sigmoids. The loss plateaus and the model looks undertrained.

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(20, 1), nn.Sigmoid())  # error: [NP105]
    criterion = nn.BCEWithLogitsLoss()
    loss = criterion(model(x).squeeze(1), y)
    ```

    ## How to fix
    Drop the sigmoid from the training path; apply `torch.sigmoid` only to turn logits into
    probabilities for predictions. The fix removes the sigmoid (unsafe when it is part of the model,
    because predictions read from the model's output change with it).

    ## Options
    None.

    ## References
    - PyTorch docs, `torch.nn.BCEWithLogitsLoss`: "combines a Sigmoid layer and the BCELoss in one
      single class ... more numerically stable"
    """

    code = "NP105"
    name = "sigmoid-before-bce-with-logits"
    message = (
        "sigmoid {where} feeds {loss} ({lines}), which applies sigmoid itself: the loss sees "
        "probabilities as logits and cannot reach 0; pass the raw logits"
    )
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        groups = _grouped(analysis(ctx).uses, {"bce_logits"}, {"sigmoid"})
        for node, (step, uses) in groups.items():
            yield self.report(
                ctx,
                node,
                fix=drop_activation_fix(ctx, step, "sigmoid"),
                where=_where(step),
                loss=uses[0].label,
                lines=_lines(u.call for u in uses),
            )


def _loss_groups(uses: Iterable[LossUse]) -> dict[ast.AST, list[LossUse]]:
    """Uses by what to report on: the loss module's constructor, else the call itself."""
    groups: dict[ast.AST, list[LossUse]] = {}
    for use in uses:
        groups.setdefault(use.ctor or use.call, []).append(use)
    return groups


def _renamed_loss_fix(ctx: ScriptContext, node: ast.AST, uses: list[LossUse]) -> Fix | None:
    """Swap the loss for the one that takes logits, when every traced use of it is flagged (another
    use of the same criterion may feed it probabilities, and the swap would break that one)."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    new = _BETTER_LOSS.get(node.func.attr)
    if new is None:
        return None
    for use in analysis(ctx).uses:
        if (use.ctor is node or use.call is node) and all(use is not u for u in uses):
            return None
    return rename_fix(ctx, node, new, f"use {new}", safe=False)


@register
class BceOnLogits(StaticRule):
    """
    ## What it does
    Finds `nn.BCELoss` or `F.binary_cross_entropy` applied to a model output that comes straight
    from a weight layer (a Linear or conv) with no sigmoid on the way, in the model or at the call
    site. It speaks only when the whole path from the layer to the loss is known.

    ## Why is this bad?
    BCELoss takes probabilities in [0, 1] and computes log(p). Raw logits are unbounded: on CPU
    the loss raises an error for values outside [0, 1], on GPU it asserts or returns NaN/inf, and
    clamped logits give zero gradient for every example outside the range.

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 1))
    criterion = nn.BCELoss()  # error: [NP106]
    loss = criterion(model(x).squeeze(1), y)
    ```

    ## How to fix
    Use `nn.BCEWithLogitsLoss` (or `F.binary_cross_entropy_with_logits`), which applies the
    sigmoid inside the loss in a numerically stable way, and `torch.sigmoid(logits)` for
    predictions. Adding a sigmoid to the model also works but is less stable. The fix swaps the
    loss; it is marked unsafe because another use of the same criterion might pass probabilities.

    ## Options
    None.

    ## References
    - PyTorch docs, `torch.nn.BCELoss` and `torch.nn.BCEWithLogitsLoss`
    """

    code = "NP106"
    name = "bce-on-logits"
    message = (
        "{loss} ({lines}) gets the raw output of {layer} with no sigmoid: BCE expects "
        "probabilities in [0, 1] and fails or gives NaN on logits; use {better}, which applies "
        "the sigmoid stably"
    )
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        raw = [
            u
            for u in analysis(ctx).uses
            if u.kind == "bce"
            and u.trace.layer
            and not u.trace.clamped
            and u.trace.first is not None
            and u.trace.first.kind == "layer"
        ]
        for node, uses in _loss_groups(raw).items():
            first = uses[0]
            better = "BCEWithLogitsLoss" if first.ctor is not None else _functional_better(first)
            assert first.trace.first is not None
            yield self.report(
                ctx,
                node,
                fix=_renamed_loss_fix(ctx, node, uses),
                loss=first.label,
                lines=_lines(u.call for u in uses),
                layer=_layer_line(first.trace.first),
                better=better,
            )


def _functional_better(use: LossUse) -> str:
    label = use.label
    for old, new in _BETTER_LOSS.items():
        if label.endswith("." + old) or label == old:
            return label[: len(label) - len(old)] + new
    return label


def _int_argument(ctx: ScriptContext, call: ast.AST, keyword: str, position: int) -> object:
    if not isinstance(call, ast.Call):
        return UNKNOWN
    expr = ctx.argument(call, keyword, position)
    return UNKNOWN if expr is None else ctx.value(expr)


def _units(ctx: ScriptContext, step: Step) -> int | None:
    if step.kind != "layer" or step.name not in _LINEAR_OUT:
        return None
    keyword, position = _LINEAR_OUT[step.name]
    value = _int_argument(ctx, step.node, keyword, position)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _softmax_dim(ctx: ScriptContext, step: Step) -> object:
    """The dim a softmax step normalizes over: a number, None when omitted, else UNKNOWN."""
    node = step.node
    if not isinstance(node, ast.Call) or step.composite:
        return UNKNOWN
    if ctx.call_name(node) in ACTIVATION_FUNCTIONS:
        expr = ctx.argument(node, "dim", 1)
    else:  # a tensor method `x.softmax(1)` or a module `nn.Softmax(dim=1)`
        expr = ctx.argument(node, "dim", 0)
    if expr is None:
        return None if not ctx.has_kwargs_splat(node) else UNKNOWN
    return ctx.value(expr)


def _class_targets(ctx: ScriptContext, target: ast.expr | None, depth: int = 0) -> bool:
    """Targets written as class indices (`y.long()`) or one-hot rows of a class index."""
    if target is None or depth > 8:
        return False
    if isinstance(target, ast.Name):
        value = definition(ctx, target)
        return value is not None and _class_targets(ctx, value, depth + 1)
    if not isinstance(target, ast.Call):
        return False
    name = ctx.call_name(target) or ""
    if name == F + "one_hot":
        return True
    func = target.func
    if isinstance(func, ast.Attribute) and not name.startswith("torch."):
        if func.attr == "long":
            return True
        if func.attr in ("to", "type") and target.args:
            if ctx.qualname(target.args[0]) in ("torch.long", "torch.int64"):
                return True
        if func.attr in _KEEP_METHODS | _RESHAPE_METHODS:
            return _class_targets(ctx, func.value, depth + 1)
    return False


@register
class OutputLossMismatch(StaticRule):
    """
    ## What it does
    Finds a model output and a loss that disagree about the task:
    - softmax (or log_softmax) over a single unit: `nn.Linear(..., 1)` then softmax, which always
      outputs 1.0 (or 0.0);
    - `NLLLoss` / `F.nll_loss` on raw Linear logits or on softmax probabilities instead of
      log_softmax;
    - `MSELoss`, `L1Loss`, `SmoothL1Loss` or `HuberLoss` on a softmax or log_softmax output;
    - `BCELoss` / `BCEWithLogitsLoss` on more than 2 output units whose targets are class
      indices or one-hot rows (`y.long()`, `F.one_hot(y)`): a multi-class task.

    ## Why is this bad?
    Each pairing trains something other than what was meant. A softmax over one unit has zero
    gradient and constant output. NLLLoss only picks `-input[target]`: on logits it rewards making
    that logit large without bound (the loss heads to minus infinity), and on softmax probabilities
    its gradient vanishes exactly when a prediction is confidently wrong. A regression loss on
    softmax outputs ties every output to the others and can never fit targets outside [0, 1].
    Independent sigmoids over mutually exclusive classes do not compete, so their probabilities
    do not sum to 1 and training is slower.

    A sigmoid before MSE is not reported: regressing targets scaled to [0, 1] (images,
    autoencoders) through a sigmoid is a legitimate choice.

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(8, 1), nn.Softmax(dim=1))  # error: [NP107]
    ```

    ## How to fix
    - one output unit: use a sigmoid (or `BCEWithLogitsLoss` on the raw output), or as many
      units as classes;
    - NLLLoss: end the model with `log_softmax`, or use `CrossEntropyLoss` on the logits (the fix
      swaps softmax for log_softmax, or NLLLoss for CrossEntropyLoss);
    - regression: drop the softmax; classification: `CrossEntropyLoss` on the logits;
    - multi-class with BCE: `CrossEntropyLoss` with class-index targets.

    ## Options
    None.

    ## References
    - AUTOTRAINER (Zhang et al., ICSE 2021), output layer / loss combinations
    - PyTorch docs, `torch.nn.NLLLoss`: "The input given through a forward call is expected to
      contain log-probabilities of each class"
    """

    code = "NP107"
    name = "output-loss-mismatch"
    message = "{detail}"
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        data = analysis(ctx)
        reported: set[ast.AST] = set()
        findings: list[Finding] = []
        for finding, node in self._single_unit(ctx, data):
            if node not in reported:
                reported.add(node)
                findings.append(finding)
        for finding, node in self._pairings(ctx, data):
            if node not in reported:
                reported.add(node)
                findings.append(finding)
        return findings

    def _single_unit(self, ctx: ScriptContext, data: Analysis) -> Iterator[tuple[Finding, ast.AST]]:
        traces = [u.trace for u in data.uses] + list(data.model_traces)
        for trace in traces:
            for step, below in zip(trace.steps, trace.steps[1:], strict=False):
                if step.kind != "activation" or step.name not in ("softmax", "log_softmax"):
                    continue
                if step.reshaped or below.kind != "layer" or _units(ctx, below) != 1:
                    continue
                if _softmax_dim(ctx, step) not in (1, -1, None):
                    continue
                value = "1.0" if step.name == "softmax" else "0.0"
                detail = (
                    f"{step.name} over a single unit ({_layer_line(below)} has out_features=1) "
                    f"always outputs {value} and passes no gradient: use a sigmoid (or "
                    "BCEWithLogitsLoss on the raw output) for a binary task, or one unit per class"
                )
                yield self.report(ctx, step.node, detail=detail), step.node

    def _pairings(self, ctx: ScriptContext, data: Analysis) -> Iterator[tuple[Finding, ast.AST]]:
        nll_raw: list[LossUse] = []
        multiclass: list[LossUse] = []
        for use in data.uses:
            first = use.trace.first
            if first is None:
                continue
            if use.kind == "nll":
                if first.kind == "layer" and use.trace.layer and not use.trace.clamped:
                    nll_raw.append(use)
            elif use.kind in ("bce", "bce_logits"):
                layer = use.trace.last_layer
                units = _units(ctx, layer) if layer is not None else None
                if units is not None and units > 2 and _class_targets(ctx, use.target):
                    multiclass.append(use)
        for node, (step, uses) in _grouped(data.uses, {"nll"}, {"softmax"}).items():
            yield self._nll_softmax(ctx, uses, step), node
        regression = _grouped(data.uses, {"regression"}, {"softmax", "log_softmax"})
        for node, (step, uses) in regression.items():
            detail = (
                f"{uses[0].label} ({_lines(u.call for u in uses)}) compares a {step.name} output "
                f"{_where(step)} with its targets: a softmax ties the outputs together in [0, 1] "
                "(log_softmax makes them <= 0); for regression drop it, for classification use "
                "CrossEntropyLoss on the logits"
            )
            yield self.report(ctx, node, detail=detail, confidence=Confidence.MEDIUM), node
        for node, uses in _loss_groups(nll_raw).items():
            use = uses[0]
            assert use.trace.first is not None
            better = "CrossEntropyLoss" if use.ctor is not None else _functional_better(use)
            detail = (
                f"{use.label} ({_lines(u.call for u in uses)}) gets raw logits from "
                f"{_layer_line(use.trace.first)}: NLLLoss expects log-probabilities and only "
                "picks -input[target], so it pushes that logit up without bound; use "
                f"{better} on the logits, or end the model with log_softmax"
            )
            yield (
                self.report(ctx, node, detail=detail, fix=_renamed_loss_fix(ctx, node, uses)),
                node,
            )
        for node, uses in _loss_groups(multiclass).items():
            layer = uses[0].trace.last_layer
            assert layer is not None
            detail = (
                f"{uses[0].label} ({_lines(u.call for u in uses)}) trains {_units(ctx, layer)} "
                f"independent sigmoids ({_layer_line(layer)}) against one-hot or class-index "
                "targets: for one class per example use CrossEntropyLoss on the logits with the "
                "class indices as targets"
            )
            yield (
                self.report(ctx, node, detail=detail, confidence=Confidence.MEDIUM),
                node,
            )

    def _nll_softmax(self, ctx: ScriptContext, uses: list[LossUse], step: Step) -> Finding:
        lines = _lines(u.call for u in uses)
        detail = (
            f"softmax {_where(step)} feeds {uses[0].label} ({lines}), which expects "
            "log-probabilities: use log_softmax instead (or CrossEntropyLoss on the logits)"
        )
        fix = None
        if isinstance(step.node, ast.Call) and not step.composite:
            attr = step.node.func.attr if isinstance(step.node.func, ast.Attribute) else ""
            new = {"softmax": "log_softmax", "Softmax": "LogSoftmax"}.get(attr)
            if new is not None:
                safe = not step.in_model and (
                    step.holder is None or not _has_other_reads(ctx, step.holder)
                )
                fix = rename_fix(ctx, step.node, new, f"use {new}", safe=safe)
        return self.report(ctx, step.node, detail=detail, fix=fix)
