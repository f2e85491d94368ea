"""NP110, NP111, NP112: weight initialisation that fights the network it initialises.

An init call is only wrong relative to the layer it fills: He init is right before ReLU and too
large before tanh; zeros are fine in a logistic regression and fatal in a hidden layer; std 1 is
harmless on a 4-unit toy layer and saturating on a 784-wide one. So each init call is first matched
to the layers it applies to, in the places real code writes them:

- directly, `nn.init.xavier_uniform_(self.fc1.weight)`, `model[0].weight.data.normal_(0, 1)`, or a
  layer bound to a name before it goes into a model;
- in a loop over modules guarded by a type test, `for m in self.modules(): if isinstance(m,
  nn.Linear): ...`, or in a function handed to `model.apply(fn)` (`_init_weights(self, m)`): those
  apply to every layer of the tested types in that model.

Then each matched layer is looked up in the model's data flow for the activation after it and for
the weight layers around it. When the layers cannot be found, or different layers disagree, the
rules stay silent.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

from nnprobe.core.finding import Confidence, Finding, Fix, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option
from nnprobe.inspectors.architecture import describe
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import FunctionNode, ScriptContext
from nnprobe.inspectors.script.models import (
    NN,
    RELU_FAMILY,
    SATURATING,
    WEIGHT_LAYERS,
    ModelDef,
    Op,
    module_op,
)
from nnprobe.inspectors.script.values import UNKNOWN
from nnprobe.inspectors.script.walk import walk

INIT = "torch.nn.init."
# Deprecated spellings without the trailing underscore still work (with a warning).
KAIMING = frozenset({"kaiming_normal_", "kaiming_uniform_", "kaiming_normal", "kaiming_uniform"})
XAVIER = frozenset({"xavier_normal_", "xavier_uniform_", "xavier_normal", "xavier_uniform"})
RANDOM = frozenset({"normal_", "normal", "trunc_normal_", "uniform_", "uniform"})
CONSTANT = frozenset({"zeros_", "ones_", "constant_", "constant"})
TENSOR_METHODS = frozenset({"normal_", "uniform_", "fill_", "zero_"})
SWAP = {
    "kaiming_normal_": "xavier_normal_",
    "kaiming_uniform_": "xavier_uniform_",
    "xavier_normal_": "kaiming_normal_",
    "xavier_uniform_": "kaiming_uniform_",
}
# The gain (std multiplier) nn.init.calculate_gain returns for each nonlinearity.
GAINS = {
    "linear": 1.0,
    "identity": 1.0,
    "sigmoid": 1.0,
    "conv1d": 1.0,
    "conv2d": 1.0,
    "conv3d": 1.0,
    "conv_transpose1d": 1.0,
    "conv_transpose2d": 1.0,
    "conv_transpose3d": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "selu": 0.75,
}
# Between Glorot's gain of 1 and He's sqrt(2): below it an init is Glorot-sized, above He-sized.
HE_GAIN = 1.2
# Activations that He init suits. SELU wants LeCun init (variance 1/fan_in), nearer to Glorot.
RECTIFIERS = RELU_FAMILY - {"selu"}
# Abstract torch.nn bases that isinstance tests use, and the layers they stand for.
_BASES = {
    "torch.nn._ConvNd": "Conv",
    "torch.nn.conv._ConvNd": "Conv",
    "torch.nn._ConvTransposeNd": "ConvTranspose",
    "torch.nn._BatchNorm": "BatchNorm",
    "torch.nn._NormBase": "Norm",
    "torch.nn._InstanceNorm": "InstanceNorm",
}
_MATMUL_METHODS = frozenset({"mm", "matmul", "bmm"})


@dataclass
class InitCall:
    """One initialisation of a parameter tensor."""

    call: ast.Call
    func: str  # the init function or tensor method: "kaiming_normal_", "fill_"
    tensor: ast.expr  # the parameter written to, `.data` stripped: `self.fc1.weight`
    method: bool  # a tensor method (`w.data.normal_(0, 1)`) rather than nn.init

    @property
    def param(self) -> str:
        """ "weight", "bias", or "other" (a bare Parameter, `p` from parameters())."""
        if isinstance(self.tensor, ast.Attribute):
            attr = self.tensor.attr
            if attr == "weight" or attr.startswith("weight_") or attr.endswith("_weight"):
                return "weight"
            if attr == "bias" or attr.startswith("bias_") or attr.endswith("_bias"):
                return "bias"
        return "other"

    @property
    def owner(self) -> ast.expr | None:
        """The module whose parameter it is (`self.fc1` for `self.fc1.weight`)."""
        if self.param != "other" and isinstance(self.tensor, ast.Attribute):
            return self.tensor.value
        return None

    @property
    def base(self) -> str:
        return self.func.rstrip("_") + "_"


@dataclass
class Occurrence:
    """A layer an init applies to, at one place in one model's data flow."""

    model: ModelDef
    index: int  # position in model.ops

    @property
    def op(self) -> Op:
        return self.model.ops[self.index]

    @property
    def hidden(self) -> bool:
        """Another weight layer follows it: it is not the network's output layer."""
        me = _layer_key(self.op)
        return any(
            o.is_weight_layer and not o.branch and _layer_key(o) != me
            for o in self.model.ops[self.index + 1 :]
        )

    @property
    def activation(self) -> str | None:
        """The activation applied after it, before the next weight layer (None: none)."""
        for other in self.model.ops[self.index + 1 :]:
            if other.kind == "activation":
                return other.name
            if other.is_weight_layer:
                return None
        return None


@dataclass
class Targets:
    """The layers one init call applies to."""

    occurrences: list[Occurrence] = field(default_factory=list)
    types: frozenset[str] | None = None  # the isinstance-tested types, for module loops
    every_layer: bool = False  # a loop over all modules of the tested types

    def layers(self) -> list[Occurrence]:
        """Feed-forward weight layers (Linear, Conv): recurrent layers have their own gates and
        activations inside, which these rules do not reason about."""
        return [o for o in self.occurrences if o.op.kind == "layer"]

    def distinct_ops(self) -> list[Op]:
        seen: dict[tuple[int, str | None], Op] = {}
        for occurrence in self.layers():
            seen.setdefault(_layer_key(occurrence.op), occurrence.op)
        return list(seen.values())


def find_inits(ctx: ScriptContext) -> list[InitCall]:
    inits: list[InitCall] = []
    for call in ctx.calls:
        name = ctx.call_name(call) or ""
        if name.startswith(INIT):
            tensor = ctx.argument(call, "tensor", 0)
            if tensor is not None:
                inits.append(InitCall(call, name[len(INIT) :], _strip_data(tensor), False))
        elif isinstance(call.func, ast.Attribute) and call.func.attr in TENSOR_METHODS:
            tensor = _strip_data(call.func.value)
            found = InitCall(call, call.func.attr, tensor, True)
            if found.param != "other":
                inits.append(found)
    return inits


def _strip_data(expr: ast.expr) -> ast.expr:
    while True:
        if isinstance(expr, ast.Attribute) and expr.attr == "data":
            expr = expr.value
        elif (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "detach"
            and not expr.args
        ):
            expr = expr.func.value
        else:
            return expr


def _layer_key(op: Op) -> tuple[int, str | None]:
    """One layer: a constructor call at one module path (a loop builds several from one call;
    a layer applied twice is still one)."""
    return id(op.node), op.path


def _depth(model: ModelDef) -> int:
    """Distinct weight layers on the main path."""
    return len({_layer_key(op) for op in model.ops if op.is_weight_layer and not op.branch})


def _matches_type(op: Op, types: frozenset[str]) -> bool:
    short = op.name.rsplit(".", 1)[-1]
    for wanted in types:
        if op.name == wanted:
            return True
        if wanted.startswith("substring:") and wanted[len("substring:") :] in short:
            return True
        prefix = _BASES.get(wanted)
        if prefix is not None and (
            short.startswith(prefix) or (prefix == "Norm" and short.endswith("Norm"))
        ):
            return True
    return False


class InitIndex:
    """Init calls in a script and the layers each applies to, shared by NP110-NP112."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self._targets: dict[ast.Call, Targets | None] = {}
        self._applied: dict[FunctionNode, list[tuple[ModelDef, str]] | None] = {}

    @cached_property
    def inits(self) -> list[InitCall]:
        return find_inits(self.ctx)

    def targets(self, init: InitCall) -> Targets | None:
        if init.call not in self._targets:
            owner = init.owner
            found = self._owner_targets(owner, init.call, 0) if owner is not None else None
            self._targets[init.call] = found
        return self._targets[init.call]

    # ------------------------------------------------------------------ owners

    def _owner_targets(self, owner: ast.expr, at: ast.AST, depth: int) -> Targets | None:
        if depth > 4:
            return None
        root, path = _path(owner)
        if root is None:
            return None
        if root.id == "self":
            model = self._class_model(at)
            return self._at_path(model, path) if model is not None else None
        if not path:
            loop = self._loop_binding(root)
            if loop is not None:
                return self._loop_targets(loop, root, at, depth)
            function = self._function_parameter(root)
            if function is not None:
                return self._applied_targets(function, at)
        resolved = self.ctx.resolve(root)
        if not path and isinstance(resolved, ast.Call):
            found = [
                Occurrence(model, i)
                for model in self.ctx.models.all
                for i, op in enumerate(model.ops)
                if op.call is resolved
            ]
            if found:
                return Targets(found)
            # A layer used on its own (`model = nn.Linear(784, 10)`): a one-layer model.
            op = module_op(self.ctx.call_name(resolved) or "", resolved, None)
            if op is not None and op.is_weight_layer:
                return Targets([Occurrence(ModelDef(root.id, resolved, [op]), 0)])
        model = self.ctx.models.for_expr(root)
        if model is not None and path:
            return self._at_path(model, path)
        return None

    def _class_model(self, at: ast.AST) -> ModelDef | None:
        cls = self.ctx.enclosing_class(at)
        if cls is None or cls.name not in self.ctx.models.module_classes:
            return None
        if self.ctx.models.module_classes[cls.name] is not cls:
            return None
        return self.ctx.models.for_class(cls)

    @staticmethod
    def _at_path(model: ModelDef, path: list[str | int]) -> Targets | None:
        resolved = _resolve_indices(model, path)
        if resolved is None:
            return None
        found = [Occurrence(model, i) for i, op in enumerate(model.ops) if op.path == resolved]
        return Targets(found) if found else None

    def _loop_binding(self, name: ast.Name) -> ast.For | None:
        """The `for` loop around `name` (in the same function) whose target binds it."""
        for ancestor in self.ctx.ancestors(name):
            if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                return None
            if isinstance(ancestor, ast.For) and any(
                isinstance(n, ast.Name) and n.id == name.id for n in walk(ancestor.target)
            ):
                return ancestor
        return None

    def _function_parameter(self, name: ast.Name) -> FunctionNode | None:
        """The function whose module parameter `name` is (`def init_weights(m)`)."""
        bindings = self.ctx.bindings(name.id, name)
        if len(bindings) != 1 or bindings[0].kind != "param":
            return None
        fn = bindings[0].scope
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            return None
        params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
        if params[:1] == ["self"]:
            params = params[1:]
        return fn if params[:1] == [name.id] else None

    def _loop_targets(
        self, loop: ast.For, var: ast.Name, at: ast.AST, depth: int
    ) -> Targets | None:
        target = loop.target
        if isinstance(target, ast.Tuple) and target.elts:
            target = target.elts[-1]  # for name, m in named_modules()
        if not isinstance(target, ast.Name) or target.id != var.id:
            return None
        iterated = loop.iter
        if isinstance(iterated, ast.List | ast.Tuple):
            combined = Targets()
            for element in iterated.elts:
                found = self._owner_targets(element, at, depth + 1)
                if found is None:
                    return None
                combined.occurrences.extend(found.occurrences)
            return combined
        if (
            isinstance(iterated, ast.Call)
            and isinstance(iterated.func, ast.Attribute)
            and iterated.func.attr in ("modules", "named_modules", "children", "named_children")
        ):
            return self._guarded(self._scopes(iterated.func.value, at), var.id, at)
        return self._children(iterated, at)

    def _children(self, container: ast.expr, at: ast.AST) -> Targets | None:
        """`for layer in self.layers`: every direct entry of a ModuleList or Sequential."""
        root, path = _path(container)
        if root is None or root.id != "self" or not path:
            return None
        model = self._class_model(at)
        prefix = _resolve_indices(model, path) if model is not None else None
        if model is None or prefix is None:
            return None
        found = [
            Occurrence(model, i)
            for i, op in enumerate(model.ops)
            if op.path and op.path.startswith(prefix + ".") and op.path[len(prefix) + 1 :].isdigit()
        ]
        return Targets(found) if found else None

    def _applied_targets(self, fn: FunctionNode, at: ast.AST) -> Targets | None:
        """A function applied to every module: `model.apply(fn)`, `self.apply(self._init)`, or
        called on the loop variable of a loop over `.modules()`."""
        if fn not in self._applied:
            self._applied[fn] = self._applied_scopes(fn)
        scopes = self._applied[fn]
        params = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args) if a.arg != "self"]
        return self._guarded(scopes, params[0], at) if scopes and params else None

    @cached_property
    def _references(self) -> dict[str, list[tuple[ast.Call, ast.expr, ast.expr | None]]]:
        """Calls that refer to a function by name: (call, the reference, the module it is
        applied to for `module.apply(fn)`, None for a plain call `fn(m)`)."""
        found: dict[str, list[tuple[ast.Call, ast.expr, ast.expr | None]]] = {}
        for call in self.ctx.calls:
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "apply" and len(call.args) == 1:
                name = _function_name(call.args[0])
                if name is not None:
                    found.setdefault(name, []).append((call, call.args[0], func.value))
            name = _function_name(func)
            if name is not None and call.args:
                found.setdefault(name, []).append((call, func, None))
        return found

    def _applied_scopes(self, fn: FunctionNode) -> list[tuple[ModelDef, str]] | None:
        scopes: list[tuple[ModelDef, str]] = []
        for call, reference, receiver in self._references.get(fn.name, []):
            if not self._names_function(reference, fn, call):
                continue
            if receiver is not None:
                found = self._scopes(receiver, call)
            else:
                argument = call.args[0]
                loop = self._loop_binding(argument) if isinstance(argument, ast.Name) else None
                if loop is None or not isinstance(loop.iter, ast.Call):
                    return None
                iterated = loop.iter.func
                if not (
                    isinstance(iterated, ast.Attribute)
                    and iterated.attr in ("modules", "named_modules")
                ):
                    return None
                found = self._scopes(iterated.value, call)
            if not found:
                return None
            scopes.extend(found)
        return scopes

    def _names_function(self, expr: ast.expr, fn: FunctionNode, at: ast.AST) -> bool:
        """Whether expr (at `at`) refers to fn: its name, or `self.<name>` in fn's class."""
        if isinstance(expr, ast.Name):
            return expr.id == fn.name and len(self.ctx.functions.get(fn.name, [])) == 1
        owner = self.ctx.parent(fn)
        return (
            isinstance(expr, ast.Attribute)
            and isinstance(expr.value, ast.Name)
            and expr.value.id == "self"
            and isinstance(owner, ast.ClassDef)
            and self.ctx.enclosing_class(at) is owner
        )

    def _scopes(self, expr: ast.expr, at: ast.AST) -> list[tuple[ModelDef, str]]:
        """The model (and the path inside it) an expression like `self`, `self.features` or
        `model` names."""
        root, path = _path(expr)
        if root is None:
            return []
        if root.id == "self":
            model = self._class_model(at)
        else:
            model = self.ctx.models.for_expr(root)
        if model is None:
            return []
        prefix = _resolve_indices(model, path)
        return [(model, prefix)] if prefix is not None else []

    def _guarded(self, scopes: list[tuple[ModelDef, str]], var: str, at: ast.AST) -> Targets | None:
        types = self._type_guard(var, at)
        if types is None or not scopes:
            return None
        found: list[Occurrence] = []
        for model, prefix in scopes:
            for i, op in enumerate(model.ops):
                if prefix and not (op.path or "").startswith(prefix + "."):
                    continue
                if _matches_type(op, types):
                    found.append(Occurrence(model, i))
        return Targets(found, types, every_layer=True)

    def _type_guard(self, var: str, at: ast.AST) -> frozenset[str] | None:
        """The types an `isinstance(m, ...)` (or `type(m) == ...`, DCGAN's
        `classname.find("Conv") != -1`) test around `at` restricts `var` to."""
        child: ast.AST = at
        for ancestor in self.ctx.ancestors(at):
            if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef | ast.For):
                break
            if isinstance(ancestor, ast.If) and any(child is s for s in ancestor.body):
                types = self._tested_types(ancestor.test, var)
                if types is not None:
                    return types
            child = ancestor
        return None

    def _tested_types(self, test: ast.expr, var: str) -> frozenset[str] | None:
        if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
            for value in test.values:
                types = self._tested_types(value, var)
                if types is not None:
                    return types
            return None
        if (
            isinstance(test, ast.Call)
            and isinstance(test.func, ast.Name)
            and test.func.id == "isinstance"
            and len(test.args) == 2
            and isinstance(test.args[0], ast.Name)
            and test.args[0].id == var
        ):
            return self._type_names(test.args[1])
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            left, right = test.left, test.comparators[0]
            if (
                isinstance(left, ast.Call)
                and isinstance(left.func, ast.Name)
                and left.func.id == "type"
                and len(left.args) == 1
                and isinstance(left.args[0], ast.Name)
                and left.args[0].id == var
                and isinstance(test.ops[0], ast.Eq | ast.Is | ast.In)
            ):
                return self._type_names(right)
            return self._classname_test(test, var)
        return None

    def _type_names(self, expr: ast.expr) -> frozenset[str] | None:
        elements = expr.elts if isinstance(expr, ast.Tuple | ast.List | ast.Set) else [expr]
        names = set()
        for element in elements:
            qual = self.ctx.qualname(element)
            if qual is None:
                return None
            names.add(qual)
        return frozenset(names)

    def _classname_test(self, test: ast.Compare, var: str) -> frozenset[str] | None:
        """`classname.find("Conv") != -1` or `"Conv" in classname`, classname being
        `m.__class__.__name__` (the DCGAN example's weights_init)."""
        left, op, right = test.left, test.ops[0], test.comparators[0]
        word: object = None
        subject: ast.expr | None = None
        if (
            isinstance(left, ast.Call)
            and isinstance(left.func, ast.Attribute)
            and left.func.attr == "find"
            and len(left.args) == 1
            and isinstance(op, ast.NotEq)
            and self.ctx.value(right) == -1
        ):
            word, subject = self.ctx.value(left.args[0]), left.func.value
        elif isinstance(op, ast.In):
            word, subject = self.ctx.value(left), right
        if not isinstance(word, str) or subject is None:
            return None
        resolved = self.ctx.resolve(subject)
        if (
            isinstance(resolved, ast.Attribute)
            and resolved.attr == "__name__"
            and isinstance(resolved.value, ast.Attribute)
            and resolved.value.attr == "__class__"
            and isinstance(resolved.value.value, ast.Name)
            and resolved.value.value.id == var
        ):
            return frozenset({"substring:" + word})
        return None


def _function_name(expr: ast.expr) -> str | None:
    """`fn` or `self.fn`: the name a function reference uses."""
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name):
        return expr.attr if expr.value.id == "self" else None
    return None


def _path(expr: ast.expr) -> tuple[ast.Name | None, list[str | int]]:
    """`self.features[0].conv` -> (self, ["features", 0, "conv"])."""
    parts: list[str | int] = []
    while True:
        if isinstance(expr, ast.Attribute):
            parts.append(expr.attr)
            expr = expr.value
        elif isinstance(expr, ast.Subscript):
            index = expr.slice
            if isinstance(index, ast.UnaryOp) and isinstance(index.op, ast.USub):
                if isinstance(index.operand, ast.Constant) and isinstance(index.operand.value, int):
                    parts.append(-index.operand.value)
                else:
                    return None, []
            elif isinstance(index, ast.Constant) and isinstance(index.value, int | str):
                parts.append(index.value)
            else:
                return None, []
            expr = expr.value
        elif isinstance(expr, ast.Name):
            return expr, parts[::-1]
        else:
            return None, []


def _resolve_indices(model: ModelDef, path: list[str | int]) -> str | None:
    """The op path a module path names, with negative indices counted from the end."""
    resolved: list[str] = []
    for part in path:
        if isinstance(part, int) and part < 0:
            prefix = ".".join(resolved)
            keys = {
                int(rest.split(".")[0])
                for op in model.ops
                if op.path
                and (rest := op.path[len(prefix) + 1 :] if prefix else op.path)
                and (not prefix or op.path.startswith(prefix + "."))
                and rest.split(".")[0].isdigit()
            }
            if not keys:
                return None
            part = max(keys) + 1 + part
            if part < 0:
                return None
        resolved.append(str(part))
    return ".".join(resolved)


def layer_widths(ctx: ScriptContext, op: Op) -> tuple[int | None, int | None]:
    """(fan_in, fan_out) of a Linear/Conv layer from its constructor's static arguments."""
    call = op.call
    if call is None:
        return None, None
    short = op.name.rsplit(".", 1)[-1]

    def arg(keyword: str, position: int) -> int | None:
        expr = ctx.argument(call, keyword, position)
        value = ctx.value(expr) if expr is not None else UNKNOWN
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    if short == "Linear":
        return arg("in_features", 0), arg("out_features", 1)
    if short == "Bilinear":
        return arg("in1_features", 0), arg("out_features", 2)
    if short.startswith(("Conv", "LazyConv")):
        lazy = short.startswith("Lazy")
        channels_in = None if lazy else arg("in_channels", 0)
        channels_out = arg("out_channels", 0 if lazy else 1)
        kernel_expr = ctx.argument(call, "kernel_size", 1 if lazy else 2)
        kernel = ctx.value(kernel_expr) if kernel_expr is not None else UNKNOWN
        area: int | None = None
        if isinstance(kernel, int) and not isinstance(kernel, bool):
            dims = int(short[-2]) if short[-2].isdigit() else 2
            area = kernel**dims
        elif isinstance(kernel, list) and all(isinstance(k, int) for k in kernel):
            area = math.prod(kernel)
        if channels_in is not None and area is not None:
            if short.startswith("ConvTranspose"):
                return channels_in * area, channels_out
            return channels_in * area, channels_out
        return None, channels_out
    if short == "LazyLinear":
        return None, arg("out_features", 0)
    return None, None


def _number_argument(
    ctx: ScriptContext, call: ast.Call, keyword: str, position: int, default: float
) -> tuple[float | None, ast.AST | None]:
    """(value, node) of a numeric argument: the default with node None when not passed, value
    None when passed but not statically known."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return ctx.number(kw.value), kw
    expr = ctx.argument(call, keyword, position)
    if expr is None:
        if ctx.has_kwargs_splat(call):
            return None, None
        return default, None
    return ctx.number(expr), expr


def _index(ctx: ScriptContext) -> InitIndex:
    """One InitIndex per parsed script, shared by the three rules."""
    return ctx.shared(InitIndex)


@register
class InitActivationMismatch(StaticRule):
    """
    ## What it does
    Flags He/Kaiming initialisation of layers that feed tanh or sigmoid, and Glorot/Xavier
    initialisation of layers that feed ReLU-family activations. Each init call is matched to the
    layers it fills (directly, or through `model.apply(fn)`, `_init_weights` and
    `for m in self.modules(): if isinstance(m, nn.Linear): ...` loops) and to the activation
    that follows each of them in the model's forward pass.

    ## Why is this bad?
    Each scheme is derived for one kind of activation. He init (variance 2/fan_in) compensates
    for ReLU zeroing half its inputs; before tanh or sigmoid it makes pre-activations twice too
    large and pushes units into saturation. Glorot init (variance 2/(fan_in + fan_out)) keeps
    the variance of a symmetric activation; before ReLU the signal halves at every layer and
    deep nets start with vanishing activations and gradients.

    `kaiming_*_(w, nonlinearity="tanh")` and `xavier_*_(w, gain=nn.init.calculate_gain("relu"))`
    are scaled for the activation named and are not reported. The output layer is not
    checked, and layers followed by different activations in different places are left alone.

    ## Example
    ```python
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(784, 256)
            self.fc2 = nn.Linear(256, 10)
            nn.init.xavier_uniform_(self.fc1.weight)  # warning: [NP110]

        def forward(self, x):
            return self.fc2(F.relu(self.fc1(x)))
    ```

    ## How to fix
    Use `nn.init.kaiming_normal_`/`kaiming_uniform_` (He) before ReLU-family activations and
    `nn.init.xavier_normal_`/`xavier_uniform_` (Glorot) before tanh and sigmoid. The suggested
    edit swaps the function and drops arguments that only the old one takes.

    ## Options
    None.

    ## References
    - He et al., Delving Deep into Rectifiers (2015)
    - Glorot and Bengio, Understanding the difficulty of training deep feedforward neural
      networks (2010)
    - PyTorch documentation, torch.nn.init
    """

    code = "NP110"
    name = "init-activation-mismatch"
    message = "{init} initialises {layers}, which feed{s} {activation}: {why}; use {suggestion}"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        index = _index(ctx)
        for init in index.inits:
            if init.method or init.param != "weight":
                continue
            if init.func in KAIMING:
                scheme = "he" if self._kaiming_is_he(ctx, init.call) else None
            elif init.func in XAVIER:
                scheme = "glorot" if self._xavier_is_glorot(ctx, init.call) else None
            else:
                continue
            if scheme is None:
                continue
            targets = index.targets(init)
            if targets is None:
                continue
            activation = self._activation(targets)
            if activation is None:
                continue
            if scheme == "he" and activation in SATURATING:
                why = "He init's variance 2/fan_in pushes saturating units into their flat tails"
                suggestion = "Glorot init (" + SWAP[init.base] + ")"
            elif scheme == "glorot" and activation in RECTIFIERS:
                why = (
                    "Glorot init is sized for symmetric activations; "
                    "ReLU halves the signal at every layer"
                )
                suggestion = "He init (" + SWAP[init.base] + ")"
            else:
                continue
            hidden: dict[tuple[int, str | None], Op] = {}
            for occurrence in targets.layers():
                if occurrence.hidden:
                    hidden.setdefault(_layer_key(occurrence.op), occurrence.op)
            ops = list(hidden.values())
            names = ", ".join(describe(op) for op in ops[:3]) + (", ..." if len(ops) > 3 else "")
            yield self.report(
                ctx,
                init.call,
                fix=self._fix(ctx, init, every_layer=targets.every_layer),
                init=init.func,
                layers=names,
                s="s" if len(ops) == 1 else "",
                activation=activation,
                why=why,
                suggestion=suggestion,
            )

    @staticmethod
    def _activation(targets: Targets) -> str | None:
        """The one activation every hidden layer of the targets feeds, or None."""
        hidden = [o for o in targets.layers() if o.hidden]
        if not hidden or any(not o.model.complete for o in hidden):
            return None
        activations = {o.activation for o in hidden}
        if len(activations) != 1:
            return None
        return activations.pop()

    @staticmethod
    def _kaiming_is_he(ctx: ScriptContext, call: ast.Call) -> bool:
        """Whether a kaiming call uses ReLU's gain (its default, nonlinearity="leaky_relu"
        with a=0, is the same); `a=math.sqrt(5)` (nn.Linear's own init) is not He."""
        nonlinearity = ctx.argument(call, "nonlinearity", 3)
        name = ctx.value(nonlinearity) if nonlinearity is not None else "leaky_relu"
        if name == "relu":
            return True
        if name != "leaky_relu":
            return False
        slope, _ = _number_argument(ctx, call, "a", 1, 0.0)
        return slope is not None and leaky_relu_gain(slope) >= HE_GAIN

    @staticmethod
    def _xavier_is_glorot(ctx: ScriptContext, call: ast.Call) -> bool:
        """Whether a xavier call keeps Glorot's scale (gain below He's)."""
        gain_expr = ctx.argument(call, "gain", 1)
        if gain_expr is None:
            return not ctx.has_kwargs_splat(call)
        gain = gain_of(ctx, gain_expr)
        return gain is not None and gain < HE_GAIN

    @staticmethod
    def _fix(ctx: ScriptContext, init: InitCall, every_layer: bool) -> Fix | None:
        new = SWAP.get(init.base)
        call = init.call
        if new is None:
            return None
        func = call.func
        if isinstance(func, ast.Attribute):
            func_text = ctx.source(func.value) + "." + new
        elif isinstance(func, ast.Name):
            local = next((k for k, v in ctx.imports.items() if v == INIT + new), None)
            if local is None:
                return None
            func_text = local
        else:
            return None
        tensor = ctx.argument(call, "tensor", 0)
        if tensor is None or ctx.has_kwargs_splat(call):
            return None
        parts = [ctx.source(tensor) if call.args else f"tensor={ctx.source(tensor)}"]
        parts += [
            f"{kw.arg}={ctx.source(kw.value)}" for kw in call.keywords if kw.arg == "generator"
        ]
        text = f"{func_text}({', '.join(parts)})"
        return Fix(
            f"use {new}",
            (ctx.replace(call, text),),
            # A module loop also re-initialises layers this rule did not look at.
            applicability="unsafe" if every_layer else "safe",
        )


def gain_of(ctx: ScriptContext, expr: ast.expr) -> float | None:
    """A gain argument's value: a number or `nn.init.calculate_gain("relu")`."""
    if isinstance(expr, ast.Call) and ctx.call_name(expr) == INIT + "calculate_gain":
        name_expr = ctx.argument(expr, "nonlinearity", 0)
        name = ctx.value(name_expr) if name_expr is not None else UNKNOWN
        if name == "leaky_relu":
            slope_expr = ctx.argument(expr, "param", 1)
            slope = ctx.number(slope_expr) if slope_expr is not None else 0.01
            return leaky_relu_gain(slope) if slope is not None else None
        return GAINS.get(name) if isinstance(name, str) else None
    return ctx.number(expr)


def leaky_relu_gain(slope: float) -> float:
    """calculate_gain("leaky_relu", slope), sqrt(2 / (1 + slope^2)), written with hypot so that
    a slope past 1e154 gives ~0 instead of overflowing in slope**2."""
    return math.sqrt(2.0) / math.hypot(1.0, slope)


@register
class LargeRandomInit(StaticRule):
    """
    ## What it does
    Flags weights drawn with a standard deviation (or uniform bound) of 0.5 or more on layers
    wider than 16 units: `nn.init.normal_(w, std=1.0)`, `w.data.normal_(0, 1)`,
    `nn.init.uniform_(w, -1, 1)`, and weight matrices created as
    `nn.Parameter(torch.randn(n, m))` without a scale.

    ## Why is this bad?
    A unit sums fan_in inputs, so its pre-activation has standard deviation about
    std * sqrt(fan_in): with std 1 and 784 inputs that is 28. Logits that large saturate the
    softmax, and hidden units that large saturate tanh/sigmoid or explode through ReLU layers;
    the seed's softmax regression initialised with normal(std=1) gets stuck near 10% accuracy.

    `nn.Embedding` weights are drawn from normal(0, 1) by design and are not checked, nor are
    biases or layers whose width is known to be 16 or less.

    ## Example
    ```python
    layer = nn.Linear(784, 10)
    nn.init.normal_(layer.weight, mean=0.0, std=1.0)  # warning: [NP111]
    ```

    ## How to fix
    Keep PyTorch's default init, or use `nn.init.kaiming_normal_` / `xavier_normal_`, or scale
    by hand: std = 1/sqrt(fan_in) (`torch.randn(n, m) / n ** 0.5`). Transformer-style
    `normal_(std=0.02)` is also fine.

    ## Options
    - `max-std` (float, default 0.5): the standard deviation or uniform bound from which a
      weight init is reported.
    - `min-width` (int, default 16): layers whose fan_in and fan_out are both known and at most
      this are not reported.

    ## References
    - CS231n, Neural Networks Part 2: weight initialization
    - LeCun et al., Efficient BackProp (1998)
    """

    code = "NP111"
    name = "large-random-init"
    message = (
        "{what}: {why}; use PyTorch's default init, kaiming/xavier, or a std near "
        "1/sqrt(fan_in){hint}"
    )
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "max-std": Option(0.5, "std or uniform bound from which a weight init is reported"),
        "min-width": Option(16, "layers with fan_in and fan_out at most this are not reported"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        index = _index(ctx)
        for init in index.inits:
            if init.param != "weight" or init.base not in RANDOM | {"trunc_normal_"}:
                continue
            finding = self._init_call(ctx, index, init)
            if finding is not None:
                yield finding
        yield from self._randn_parameters(ctx)

    def _spread(
        self, ctx: ScriptContext, init: InitCall
    ) -> tuple[str, float | None, ast.AST | None]:
        """("std"|"bound", value, node that sets it) for a normal/uniform init."""
        call = init.call
        offset = 0 if init.method else 1
        if init.base in ("normal_", "trunc_normal_"):
            std, node = _number_argument(ctx, call, "std", offset + 1, 1.0)
            return "std", std, node
        low, low_node = _number_argument(ctx, call, "from" if init.method else "a", offset, 0.0)
        high, high_node = _number_argument(ctx, call, "to" if init.method else "b", offset + 1, 1.0)
        if low is None or high is None:
            return "bound", None, None
        return "bound", max(abs(low), abs(high)), high_node or low_node

    def _init_call(self, ctx: ScriptContext, index: InitIndex, init: InitCall) -> Finding | None:
        kind, spread, node = self._spread(ctx, init)
        if spread is None or spread < self.opt("max-std"):
            return None
        targets = index.targets(init)
        if targets is None:
            return None
        ops = targets.distinct_ops()
        if not ops:
            return None
        if any(op.name not in WEIGHT_LAYERS for op in ops):
            return None
        widths = [layer_widths(ctx, op) for op in ops]
        limit = self.opt("min-width")
        if all(i is not None and o is not None and i <= limit and o <= limit for i, o in widths):
            return None
        fan_in = next((i for i, _ in widths if i is not None), None)
        names = ", ".join(describe(op) for op in ops[:3]) + (", ..." if len(ops) > 3 else "")
        shape = ""
        if len(ops) == 1 and widths[0][0] is not None and widths[0][1] is not None:
            shape = f", {widths[0][0]} -> {widths[0][1]}"
        confidence = None
        if any(i is None and o is None for i, o in widths):
            confidence = Confidence.LOW
        return self.report(
            ctx,
            node or init.call,
            confidence=confidence,
            what=f"weights of {names}{shape} drawn with {kind} {spread:g}",
            why=self._why(fan_in, spread if kind == "std" else spread / math.sqrt(3.0)),
            hint=f" = {1 / math.sqrt(fan_in):.3g}" if fan_in else "",
        )

    @staticmethod
    def _why(fan_in: int | None, std: float) -> str:
        """Why that spread hurts, with the pre-activation std it gives (for unit-variance
        inputs) when the fan-in is known."""
        effect = "softmax, tanh and sigmoid saturate and ReLU activations blow up from the start"
        if fan_in:
            return (
                f"each unit sums {fan_in} inputs, so its pre-activation has std about "
                f"{std * math.sqrt(fan_in):.3g}: {effect}"
            )
        return f"pre-activations get sqrt(fan_in) times that std: {effect}"

    def _randn_parameters(self, ctx: ScriptContext) -> Iterator[Finding]:
        weights: dict[ast.Call, WeightUse] | None = None
        for call, _ in ctx.calls_to(NN + "Parameter", "torch.nn.parameter.Parameter"):
            data = ctx.argument(call, "data", 0)
            if data is None:
                continue
            randn, scale = self._randn_and_scale(ctx, data)
            if randn is None or scale is None or scale < self.opt("max-std"):
                continue
            if weights is None:
                weights = _matmul_parameters(ctx)
            use = weights.get(call)
            if use is None:
                continue
            dims = self._dims(ctx, randn)
            if len(dims) < 2:
                continue
            limit = self.opt("min-width")
            if all(d is not None and d <= limit for d in dims):
                continue
            fan_in = use.fan_in(dims)
            scaled = f" * {scale:g}" if scale != 1.0 else ", unscaled"
            yield self.report(
                ctx,
                randn,
                what=f"weight '{use.attr}' is {ctx.source(randn)}{scaled} (std {scale:g})",
                why=self._why(fan_in, scale),
                hint=f" = {1 / math.sqrt(fan_in):.3g}" if fan_in else "",
            )

    @staticmethod
    def _randn_and_scale(
        ctx: ScriptContext, expr: ast.expr
    ) -> tuple[ast.Call | None, float | None]:
        """The torch.randn call at the root of expr and the factor it is scaled by (1.0 when
        unscaled, None when scaled by something not statically known)."""
        if isinstance(expr, ast.Call) and ctx.call_name(expr) == "torch.randn":
            return expr, 1.0
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mult | ast.Div):
            for inner, other in ((expr.left, expr.right), (expr.right, expr.left)):
                if isinstance(inner, ast.Call) and ctx.call_name(inner) == "torch.randn":
                    if isinstance(expr.op, ast.Div) and inner is expr.right:
                        return None, None
                    factor = ctx.number(other)
                    if factor is None or factor == 0:
                        return inner, None
                    return inner, abs(1 / factor if isinstance(expr.op, ast.Div) else factor)
        return None, None

    @staticmethod
    def _dims(ctx: ScriptContext, randn: ast.Call) -> list[int | None]:
        args: list[ast.expr] = list(randn.args)
        if len(args) == 1 and isinstance(args[0], ast.Tuple | ast.List):
            args = list(args[0].elts)
        dims: list[int | None] = []
        for arg in args:
            if isinstance(arg, ast.Starred):
                return []
            value = ctx.value(arg)
            dims.append(value if isinstance(value, int) and not isinstance(value, bool) else None)
        return dims


@dataclass
class WeightUse:
    """A Parameter the module multiplies inputs by, and which of its axes is the fan-in."""

    attr: str
    fan_in_axis: str | None  # "rows" (x @ W), "columns" (W @ x, F.linear), "filters" (F.conv)

    def fan_in(self, dims: list[int | None]) -> int | None:
        if len(dims) < 2:
            return None
        if self.fan_in_axis == "rows":
            return dims[-2]
        if self.fan_in_axis == "columns":
            return dims[-1]
        if self.fan_in_axis == "filters":
            rest = dims[1:]
            return math.prod(d for d in rest if d is not None) if None not in rest else None
        return None


def _matmul_parameters(ctx: ScriptContext) -> dict[ast.Call, WeightUse]:
    """`self.W = nn.Parameter(...)` calls whose attribute the module multiplies inputs by
    (`x @ self.W`, `torch.matmul(x, self.W)`, `F.linear(x, self.W)`). Positional embeddings and
    class tokens, which are added, are not weights in this sense."""
    result: dict[ast.Call, WeightUse] = {}
    for cls in ctx.models.module_classes.values():
        assigned: dict[str, ast.Call] = {}
        used: dict[str, str | None] = {}
        for node in walk(cls):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                for target in node.targets:
                    attr = _weight_attr(target)
                    if attr is not None:
                        assigned[attr] = node.value
            for operand, axis in _matmul_operands(ctx, node):
                attr = _weight_attr(operand)
                if attr is not None:
                    used[attr] = axis if used.get(attr, axis) == axis else None
        for attr, call in assigned.items():
            if attr in used:
                result[call] = WeightUse(attr, used[attr])
    return result


def _weight_attr(expr: ast.AST) -> str | None:
    """`self.W`, also transposed (`self.W.t()`, `self.W.T`): the attribute name."""
    transposed = False
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        if expr.func.attr in ("t", "transpose"):
            expr, transposed = expr.func.value, True
    elif isinstance(expr, ast.Attribute) and expr.attr in ("T", "mT"):
        expr, transposed = expr.value, True
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
        and not transposed
    ):
        return expr.attr
    return None


def _matmul_operands(ctx: ScriptContext, node: ast.AST) -> list[tuple[ast.expr, str]]:
    """The weight operands of a product that multiplies inputs by a weight matrix, and the
    fan-in axis each implies: `x @ W`, `torch.matmul(x, W)`, `x.mm(W)`, `F.linear(x, W)`,
    `F.conv2d(x, W)`. A parameter on the left (`torch.matmul(queries, x.T)`) or in an einsum is
    more often a set of learned tokens than a layer's weights, and is left alone."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        return [(node.right, "rows")]
    if not isinstance(node, ast.Call):
        return []
    name = ctx.call_name(node)
    if name in ("torch.matmul", "torch.mm", "torch.bmm") and len(node.args) == 2:
        return [(node.args[1], "rows")]
    if name in ("torch.nn.functional.linear", "torch.nn.functional.bilinear"):
        weight = ctx.argument(node, "weight", 1)
        return [(weight, "columns")] if weight is not None else []
    if name and name.startswith("torch.nn.functional.conv"):
        weight = ctx.argument(node, "weight", 1)
        return [(weight, "filters")] if weight is not None else []
    if isinstance(node.func, ast.Attribute) and node.func.attr in _MATMUL_METHODS and node.args:
        if name is None or not name.startswith("torch."):
            return [(node.args[0], "rows")]
    return []


@register
class ConstantHiddenInit(StaticRule):
    """
    ## What it does
    Flags `zeros_`, `ones_`, `constant_`, `fill_` and `zero_` on the weights of a hidden layer
    of a network with two or more weight layers.

    ## Why is this bad?
    Units of a layer whose incoming weights are all equal compute the same value and receive
    the same gradient, so they stay equal for the whole of training: the layer behaves like a
    single unit. With zeros and ReLU the gradient is exactly zero and nothing learns at all.

    Constant init is fine where there is no symmetry to break: biases, the weights of a
    single-layer model (softmax or logistic regression), the output layer (zero-init of the
    last layer is a known trick), and normalisation layers (`constant_(bn.weight, 1)`, or 0 for
    the last BatchNorm of a residual branch). None of those are reported.

    ## Example
    ```python
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    nn.init.zeros_(model[0].weight)  # error: [NP112]
    ```

    ## How to fix
    Keep PyTorch's default init for the hidden layers, or use `nn.init.kaiming_normal_` (ReLU)
    / `nn.init.xavier_uniform_` (tanh, sigmoid); keep zeros for the biases.

    ## Options
    None.

    ## References
    - CS231n, Neural Networks Part 2: weight initialization ("pitfall: all zero initialization")
    - Goodfellow, Bengio and Courville, Deep Learning, section 8.4
    """

    code = "NP112"
    name = "constant-hidden-init"
    message = (
        "{init} sets the weights of {layers}, {where}, to a constant: every unit computes the "
        "same value and gets the same gradient, so symmetry is never broken; use the default "
        "init or kaiming/xavier for hidden weights (zeros are fine for biases)"
    )
    severity = Severity.ERROR
    confidence = Confidence.HIGH

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        index = _index(ctx)
        for init in index.inits:
            if init.param != "weight":
                continue
            if init.method:
                if init.func not in ("fill_", "zero_"):
                    continue
            elif init.func not in CONSTANT:
                continue
            targets = index.targets(init)
            if targets is None:
                continue
            hidden = [o for o in targets.layers() if o.model.complete and o.hidden]
            if not hidden:
                continue
            ops: dict[tuple[int, str | None], Op] = {}
            for occurrence in hidden:
                ops.setdefault(_layer_key(occurrence.op), occurrence.op)
            names = ", ".join(describe(op) for op in list(ops.values())[:3])
            if len(ops) > 3:
                names += ", ..."
            depth = max(_depth(o.model) for o in hidden)
            where = (
                "hidden layers" if len(ops) > 1 else "a hidden layer"
            ) + f" of a net with {depth} weight layers"
            yield self.report(ctx, init.call, init=init.func, layers=names, where=where)
