"""NP108, NP109, NP117: network shapes that make gradients vanish or explode before training starts.

All three read the models of ModelIndex (layers and activations in data-flow order). Each guards
against the places where the same functions are right: sigmoid and tanh as gates (`x * sigmoid(g)`,
squeeze-and-excitation, hand-written LSTM cells), inside recurrent models and additive attention,
and as the output activation; ReLU in an RNN whose recurrent matrix starts at the identity (IRNN);
deep stacks of SELU units, which normalise themselves. Where a model cannot be read whole the
depth rule stays silent.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from functools import cached_property

from nnprobe.core.finding import Confidence, Finding, Fix, Range, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import FunctionNode, ScriptContext
from nnprobe.inspectors.script.models import (
    RELU_FAMILY,
    ModelDef,
    Op,
    activation_of_call,
)
from nnprobe.inspectors.script.walk import walk

HIDDEN_SATURATING = frozenset({"sigmoid", "tanh"})
# relu6 is bounded above, so it cannot blow a recurrent state up the way the others can.
UNBOUNDED = RELU_FAMILY - {"relu6"}
RNN_POSITIONS = {"torch.nn.RNN": 3, "torch.nn.RNNCell": 3}
# Parameter names a hand-written cell's forward gives its recurrent state.
_STATE_NAME = re.compile(r"h|hx|h_?t|h_?prev|prev_?h|hidden|hid|state|h_?0|s|s_?prev")
_MULTIPLY_CALLS = frozenset({"torch.mul", "torch.multiply", "torch.addcmul"})
_MULTIPLY_METHODS = frozenset({"mul", "mul_", "multiply"})
_SHAPE_METHODS = frozenset(
    {"view", "reshape", "unsqueeze", "squeeze", "expand", "expand_as", "flatten", "contiguous"}
)


def describe(op: Op) -> str:
    """How a message names a layer: its module path and class (`fc1 (Linear)`)."""
    short = op.name.rsplit(".", 1)[-1]
    if op.path and op.path.replace(".", "").isdigit():
        return f"layer {op.path} ({short})"
    if op.path:
        return f"{op.path} ({short})"
    line = getattr(op.node, "lineno", None)
    return f"{short} (line {line})" if line else short


def class_name_range(ctx: ScriptContext, cls: ast.ClassDef) -> Range:
    """The class name token of a `class Net(nn.Module):` line."""
    text = ctx.lines[cls.lineno - 1] if cls.lineno <= len(ctx.lines) else ""
    start = text.find(cls.name, text.find("class"))
    if start < 0:
        return ctx.range_of(cls)
    return Range.of(cls.lineno, start + 1, cls.lineno, start + 1 + len(cls.name))


def _forwards(ctx: ScriptContext) -> Iterator[tuple[ast.ClassDef, FunctionNode]]:
    for cls in ctx.models.module_classes.values():
        for stmt in cls.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == "forward":
                yield cls, stmt


def _self_attr(expr: ast.AST) -> str | None:
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
    ):
        return expr.attr
    return None


def _projection(expr: ast.AST) -> bool:
    """An expression that multiplies by weights: a call (`self.W(x)`, `F.linear`) or `x @ W`."""
    return any(
        isinstance(n, ast.Call) or (isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult))
        for n in walk(expr)
    )


def _sum_of_projections(expr: ast.AST) -> bool:
    """`W(x) + U(h)`: the pre-activation of a recurrent cell or of additive attention."""
    terms = _add_terms(expr)
    return sum(1 for t in terms if _projection(t)) >= 2


def _add_terms(expr: ast.AST) -> list[ast.AST]:
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        return _add_terms(expr.left) + _add_terms(expr.right)
    return [expr]


class _Usage:
    """Where a forward uses sigmoid/tanh as something other than a hidden activation."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx

    @cached_property
    def exempt(self) -> set[ast.AST]:
        """Nodes of activation ops (functional calls or module constructors) used as gates, in
        time-step loops, or on sums of projections."""
        nodes: set[ast.AST] = set()
        for cls, forward in _forwards(self.ctx):
            model = self.ctx.models.for_class(cls)
            if model is None:
                continue
            nodes |= self._gates(model, forward)
            nodes |= self._cells(model, forward)
        return nodes

    def _activation_nodes(self, model: ModelDef, expr: ast.AST, depth: int = 0) -> set[ast.AST]:
        """Activation ops whose output an expression is (through names, reshapes, indexing)."""
        if depth > 6:
            return set()
        if isinstance(expr, ast.Subscript | ast.Starred):
            return self._activation_nodes(model, expr.value, depth + 1)
        if isinstance(expr, ast.Name):
            found: set[ast.AST] = set()
            for binding in self.ctx.bindings(expr.id, expr):
                if binding.value is not None:
                    found |= self._activation_nodes(model, binding.value, depth + 1)
            return found
        if not isinstance(expr, ast.Call):
            return set()
        if activation_of_call(self.ctx, expr) is not None:
            return {expr}
        if isinstance(expr.func, ast.Attribute) and expr.func.attr in _SHAPE_METHODS:
            return self._activation_nodes(model, expr.func.value, depth + 1)
        attr = _self_attr(expr.func)
        if attr is not None and model.submodules.get(attr):
            # The submodule's output: its last op, past trailing reshapes (einops Rearrange).
            ops = model.submodules[attr]
            while len(ops) > 1 and ops[-1].kind in ("other", "dropout"):
                ops = ops[:-1]
            if ops[-1].kind == "activation":
                return {ops[-1].node}
        return set()

    def _gates(self, model: ModelDef, forward: FunctionNode) -> set[ast.AST]:
        nodes: set[ast.AST] = set()
        for node in walk(forward):
            operands: list[ast.AST] = []
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
                operands = [node.left, node.right]
            elif isinstance(node, ast.Call):
                if self.ctx.call_name(node) in _MULTIPLY_CALLS:
                    operands = list(node.args)
                elif isinstance(node.func, ast.Attribute) and node.func.attr in _MULTIPLY_METHODS:
                    operands = [node.func.value, *node.args]
            for operand in operands:
                nodes |= self._activation_nodes(model, operand)
        return nodes

    def _cells(self, model: ModelDef, forward: FunctionNode) -> set[ast.AST]:
        """Activations on `W(x) + U(h)`, and every activation inside a loop over time steps
        (a loop in forward that does not walk the model's own layers)."""
        nodes: set[ast.AST] = set()
        for node in walk(forward):
            if isinstance(node, ast.For | ast.While) and not self._layer_loop(node, model):
                for inner in walk(node):
                    if isinstance(inner, ast.Call):
                        nodes |= self._applied(model, inner)
            if isinstance(node, ast.Call):
                argument = self._argument(model, node)
                if argument is not None and _sum_of_projections(self._assigned(argument)):
                    nodes |= self._applied(model, node)
        return nodes

    def _assigned(self, expr: ast.expr) -> ast.expr:
        """A name's value when the name is assigned once before (`features = q + k` then
        `torch.tanh(features)`); otherwise the expression itself."""
        if isinstance(expr, ast.Name):
            assigns = [b for b in self.ctx.bindings(expr.id, expr) if b.kind == "assign"]
            earlier = [b for b in assigns if getattr(b.node, "lineno", 0) < expr.lineno]
            if earlier and earlier[-1].value is not None:
                return earlier[-1].value
        return expr

    def _applied(self, model: ModelDef, call: ast.Call) -> set[ast.AST]:
        if activation_of_call(self.ctx, call) is not None:
            return {call}
        attr = _self_attr(call.func)
        ops = model.submodules.get(attr or "", [])
        if len(ops) == 1 and ops[0].kind == "activation":
            return {ops[0].node}
        return set()

    def _argument(self, model: ModelDef, call: ast.Call) -> ast.expr | None:
        if not self._applied(model, call):
            return None
        if call.args:
            return call.args[0]
        if isinstance(call.func, ast.Attribute) and _self_attr(call.func) is None:
            return call.func.value  # (W(x) + U(h)).tanh()
        return None

    @staticmethod
    def _layer_loop(loop: ast.For | ast.While, model: ModelDef) -> bool:
        if not isinstance(loop, ast.For):
            return False
        iterated = loop.iter
        if (
            isinstance(iterated, ast.Call)
            and isinstance(iterated.func, ast.Name)
            and (iterated.func.id in ("enumerate", "reversed", "zip") and iterated.args)
        ):
            iterated = iterated.args[0]
        if _self_attr(iterated) in model.submodules:
            return True
        # `for i in range(n): x = self.layers[i](x)`: indexing the model's own layers.
        return any(
            isinstance(n, ast.Subscript) and _self_attr(n.value) in model.submodules
            for n in walk(loop)
        )


@register
class SaturatingHiddenActivation(StaticRule):
    """
    ## What it does
    Flags sigmoid and tanh used as hidden activations, between the weight layers of a
    feed-forward or convolutional network with three or more weight layers.

    ## Why is this bad?
    The derivative of sigmoid is at most 0.25 and that of tanh at most 1, and both fall to
    zero once the unit saturates. Backpropagation multiplies one such factor per layer, so the
    first layers of a deep sigmoid/tanh stack receive almost no gradient and the loss sits on
    a plateau. ReLU-family activations pass the gradient through unchanged where they are
    active, which is why they are the default for hidden layers.

    Sigmoid and tanh stay right where they are squashing an output (a sigmoid for binary
    classification), gating (`x * torch.sigmoid(g)`, squeeze-and-excitation, LSTM/GRU cells),
    inside recurrent models and in additive attention; those are not reported.

    ## Example
    ```python
    model = nn.Sequential(
        nn.Linear(64, 32),
        nn.Sigmoid(),  # warning: [NP108]
        nn.Linear(32, 32),
        nn.Sigmoid(),  # warning: [NP108]
        nn.Linear(32, 10),
    )
    ```

    ## How to fix
    Use `nn.ReLU()` (or LeakyReLU/GELU) between hidden layers, with He initialisation
    (`nn.init.kaiming_normal_(w, nonlinearity="relu")`, PyTorch's default for `nn.Linear` is
    close to it). Adding BatchNorm/LayerNorm after each layer also keeps saturating units in
    their sensitive range.

    ## Options
    - `min-weight-layers` (int, default 3): nets with fewer weight layers are not checked.

    ## References
    - Glorot and Bengio, Understanding the difficulty of training deep feedforward neural
      networks (2010)
    - Nair and Hinton, Rectified Linear Units Improve Restricted Boltzmann Machines (2010)
    - CS231n, Neural Networks Part 1: commonly used activation functions
    """

    code = "NP108"
    name = "saturating-hidden-activation"
    message = (
        "{activation} between {before} and {after} in a net with {layers} weight layers: "
        "saturating hidden units shrink the gradient at every layer{detail}; use ReLU "
        "(with He/kaiming init) for hidden layers"
    )
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "min-weight-layers": Option(3, "nets with fewer weight layers are not checked"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        usage = _Usage(ctx)
        reported: set[ast.AST] = set()
        for model in ctx.models.all:
            for op, before, after, layers in self._candidates(model, usage):
                if op.node in reported:
                    continue
                reported.add(op.node)
                detail = " (sigmoid's derivative is at most 0.25)" if op.name == "sigmoid" else ""
                yield self.report(
                    ctx,
                    op.node,
                    activation=op.name,
                    before=describe(before),
                    after=describe(after),
                    layers=layers,
                    detail=detail,
                )

    def _candidates(self, model: ModelDef, usage: _Usage) -> Iterator[tuple[Op, Op, Op, int]]:
        ops = [op for op in model.ops if not op.branch]
        if any(op.kind == "recurrent" for op in ops):
            return
        weights = [i for i, op in enumerate(ops) if op.is_weight_layer]
        if len(weights) < self.opt("min-weight-layers"):
            return
        found: list[tuple[Op, Op, Op]] = []
        for index, op in enumerate(ops):
            if (
                op.kind != "activation"
                or op.name not in HIDDEN_SATURATING
                or not weights[0] < index < weights[-1]
                or op.node in usage.exempt
            ):
                continue
            before = ops[max(i for i in weights if i < index)]
            after = ops[min(i for i in weights if i > index)]
            found.append((op, before, after))
        if len(found) == 1 and self._bottleneck(model, found[0][0]):
            return
        for op, before, after in found:
            yield op, before, after, len(weights)

    @staticmethod
    def _bottleneck(model: ModelDef, op: Op) -> bool:
        """A lone tanh/sigmoid closing a sub-network (an encoder's squashed code): a design
        choice at one boundary, not a stack of saturating layers."""
        if not op.path or "." not in op.path:
            return False
        sub = model.submodules.get(op.path.split(".")[0], [])
        return bool(sub) and sub[-1].node is op.node and any(o.is_weight_layer for o in sub)


@register
class RnnRelu(StaticRule):
    """
    ## What it does
    Flags recurrent networks whose hidden state goes through ReLU at every time step:
    `nn.RNN(..., nonlinearity="relu")`, `nn.RNNCell(..., nonlinearity="relu")`, and
    hand-written cells such as `h = torch.relu(self.W(x_t) + self.U(h))` in a loop over time.

    ## Why is this bad?
    A recurrent net applies the same weight matrix to its state at every step. tanh keeps that
    state in [-1, 1]; ReLU leaves it unbounded, so as soon as the recurrent matrix has a gain
    above one in some direction the state, and the gradient through time, grow geometrically
    with sequence length and training diverges. The exception is the IRNN (ReLU with the
    recurrent matrix initialised to the identity), which is left alone when the script
    initialises `weight_hh` with `eye_`.

    ## Example
    ```python
    rnn = nn.RNN(input_size=1, hidden_size=64, nonlinearity="relu")  # warning: [NP109]
    ```

    ## How to fix
    Use `nonlinearity="tanh"` (the default), or an `nn.LSTM`/`nn.GRU`, whose gates keep the
    state bounded. The suggested edit switches to tanh; it is marked unsafe because it changes
    the model (and what any saved checkpoint means). If ReLU is deliberate, initialise the
    recurrent weights to the identity and clip gradients.

    ## Options
    None.

    ## References
    - Pascanu, Mikolov and Bengio, On the difficulty of training recurrent neural networks (2013)
    - Le, Jaitly and Hinton, A Simple Way to Initialize Recurrent Networks of Rectified Linear
      Units (2015)
    - PyTorch documentation, torch.nn.RNN
    """

    code = "NP109"
    name = "rnn-relu"
    message = "{what}: {why}; use tanh (the default) or an LSTM/GRU"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        if self._identity_recurrence(ctx):
            return
        yield from self._modules(ctx)
        yield from self._cells(ctx)

    def _modules(self, ctx: ScriptContext) -> Iterator[Finding]:
        for call, name in ctx.calls_to(*RNN_POSITIONS):
            anchor: ast.AST
            keyword = next((kw for kw in call.keywords if kw.arg == "nonlinearity"), None)
            if keyword is not None:
                value, anchor = keyword.value, keyword
            else:
                positional = ctx.argument(call, "nonlinearity", RNN_POSITIONS[name])
                if positional is None:
                    continue
                value = anchor = positional
            if ctx.value(value) != "relu":
                continue
            fix = None
            if isinstance(value, ast.Constant):
                quote = ctx.source(value)[:1] or '"'
                fix = Fix(
                    "use nonlinearity='tanh'",
                    (ctx.replace(value, f"{quote}tanh{quote}"),),
                    applicability="unsafe",
                )
            short = name.rsplit(".", 1)[-1]
            yield self.report(
                ctx,
                anchor,
                fix=fix,
                what=f"{short} with nonlinearity='relu'",
                why=(
                    "the hidden state is unbounded and is multiplied by the same matrix at every "
                    "step, so it and its gradient can grow geometrically with sequence length"
                ),
            )

    def _cells(self, ctx: ScriptContext) -> Iterator[Finding]:
        """`h = relu(W(x_t) + U(h))` in a loop, or a cell's `return relu(W(x) + U(h))`."""
        for value in ctx.calls:
            statement = ctx.parent(value)
            if not isinstance(statement, ast.Assign | ast.Return) or not value.args:
                continue
            if activation_of_call(ctx, value) is None and _self_attr(value.func) is None:
                continue
            fn = ctx.enclosing_function(value)
            if fn is None:
                continue
            model = None
            cls = ctx.parent(fn)
            if isinstance(cls, ast.ClassDef) and cls.name in ctx.models.module_classes:
                model = ctx.models.for_class(cls)
            activation = self._relu(ctx, model, value)
            if activation is None:
                continue
            state: str | None = None
            inputs: set[str] = set()
            if (
                isinstance(statement, ast.Assign)
                and len(statement.targets) == 1
                and isinstance(statement.targets[0], ast.Name)
            ):
                loop = self._enclosing_loop(ctx, statement, fn)
                if loop is None:
                    continue
                state = statement.targets[0].id
                inputs = self._loop_names(loop) - {state}
            elif isinstance(statement, ast.Return) and fn.name == "forward":
                # A cell module, forward(self, x, h) returning relu(W(x) + U(h)): its caller
                # loops over time.
                params = {a.arg for a in (*fn.args.posonlyargs, *fn.args.args)} - {"self"}
                states = [p for p in params if _STATE_NAME.fullmatch(p)]
                if len(states) != 1 or len(params) < 2:
                    continue
                state = states[0]
                inputs = params - {state}
            if state is None:
                continue
            terms = _add_terms(value.args[0])
            if not any(self._through_weights(t, state) for t in terms):
                continue
            if not any(
                not self._uses(t, state) and any(self._uses(t, n) for n in inputs) for t in terms
            ):
                continue
            yield self.report(
                ctx,
                value,
                what=f"the recurrent state '{state}' goes through {activation} at every step",
                why=(
                    "ReLU leaves it unbounded, so it and its gradient can grow geometrically "
                    "with sequence length"
                ),
            )

    @staticmethod
    def _relu(ctx: ScriptContext, model: ModelDef | None, call: ast.Call) -> str | None:
        name = activation_of_call(ctx, call)
        if name is None and model is not None:
            attr = _self_attr(call.func)
            ops = model.submodules.get(attr or "", [])
            if len(ops) == 1 and ops[0].kind == "activation":
                name = ops[0].name
        return name if name in UNBOUNDED else None

    @staticmethod
    def _enclosing_loop(
        ctx: ScriptContext, node: ast.AST, fn: FunctionNode
    ) -> ast.For | ast.While | None:
        for ancestor in ctx.ancestors(node):
            if ancestor is fn:
                return None
            if isinstance(ancestor, ast.For | ast.While):
                return ancestor
        return None

    @staticmethod
    def _loop_names(loop: ast.For | ast.While) -> set[str]:
        """Names that change with each iteration: the loop targets and names assigned inside."""
        names: set[str] = set()
        if isinstance(loop, ast.For):
            names |= {n.id for n in walk(loop.target) if isinstance(n, ast.Name)}
        for stmt in loop.body:
            for node in walk(stmt):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        names |= {n.id for n in walk(target) if isinstance(n, ast.Name)}
        return names

    @staticmethod
    def _uses(expr: ast.AST, name: str) -> bool:
        """Whether `name` is read in expr as data (not as the function being called)."""
        callees = {
            id(inner) for n in walk(expr) if isinstance(n, ast.Call) for inner in walk(n.func)
        }
        return any(
            isinstance(n, ast.Name) and n.id == name and id(n) not in callees for n in walk(expr)
        )

    @classmethod
    def _through_weights(cls, term: ast.AST, name: str) -> bool:
        """`U(h)`, `h @ W`, `F.linear(h, W)`: the state multiplied by a weight matrix."""
        for node in walk(term):
            if isinstance(node, ast.Call) and any(cls._uses(a, name) for a in node.args):
                return True
            if (
                isinstance(node, ast.BinOp)
                and isinstance(node.op, ast.MatMult)
                and (cls._uses(node.left, name) or cls._uses(node.right, name))
            ):
                return True
        return False

    @staticmethod
    def _identity_recurrence(ctx: ScriptContext) -> bool:
        """An IRNN: the recurrent weights are set to the identity (`eye_`/`torch.eye`)."""
        for call in ctx.calls:
            if ctx.call_name(call) not in ("torch.nn.init.eye_", "torch.nn.init.eye", "torch.eye"):
                continue
            statement = next((a for a in ctx.ancestors(call) if isinstance(a, ast.stmt)), call)
            if "weight_hh" in ctx.source(statement):
                return True
        return False


@register
class DeepWithoutNormalization(StaticRule):
    """
    ## What it does
    Flags a network with eight or more stacked weight layers and neither a normalisation layer
    (BatchNorm, LayerNorm, GroupNorm, InstanceNorm, RMSNorm) nor a residual connection.

    ## Why is this bad?
    Each layer scales the signal and its gradient by a factor that is only close to one on
    average; over many layers the product drifts, so activations and gradients vanish or
    explode and the first layers train far more slowly than the last (the degradation problem
    that batch normalisation and residual connections were introduced to solve).

    Models built in a loop (`for _ in range(depth): layers += [nn.Linear(h, h), nn.ReLU()]`) are
    counted when the loop bounds are static. Models that cannot be read whole are not
    reported, nor are self-normalising SELU networks.

    ## Example
    ```python
    layers = []
    for _ in range(10):
        layers += [nn.Linear(128, 128), nn.ReLU()]
    model = nn.Sequential(*layers)  # warning: [NP117]
    ```

    ## How to fix
    Add `nn.BatchNorm1d`/`nn.BatchNorm2d` (or `nn.LayerNorm` for small batches and
    transformers) after each weight layer, or add residual connections (`x = x + block(x)`),
    or make the network shallower.

    ## Options
    - `min-depth` (int, default 8): the number of stacked weight layers from which a network
      without normalisation or residual connections is reported.

    ## References
    - Ioffe and Szegedy, Batch Normalization: Accelerating Deep Network Training by Reducing
      Internal Covariate Shift (2015)
    - He et al., Deep Residual Learning for Image Recognition (2016)
    - Klambauer et al., Self-Normalizing Neural Networks (2017)
    """

    code = "NP117"
    name = "deep-without-normalization"
    message = (
        "{layers} stacked weight layers ({kinds}) with no BatchNorm/LayerNorm/GroupNorm and no "
        "residual connection: activations and gradients drift with depth; add a norm layer after "
        "each weight layer or skip connections"
    )
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "min-depth": Option(8, "stacked weight layers from which a net without norm is reported"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        qualifying = [m for m in ctx.models.all if self._qualifies(m)]
        # Innermost first: a wrapper class around a reported Sequential is not reported again.
        qualifying.sort(key=lambda m: (len(m.weight_layers), isinstance(m.node, ast.ClassDef)))
        reported: list[set[int]] = []
        for model in qualifying:
            nodes = {id(op.node) for op in model.weight_layers}
            if any(done <= nodes for done in reported):
                continue  # a model built from one already reported
            reported.append(nodes)
            counts: dict[str, int] = {}
            for op in model.weight_layers:
                short = op.name.rsplit(".", 1)[-1]
                counts[short] = counts.get(short, 0) + 1
            kinds = ", ".join(f"{n} x {k}" for k, n in counts.items())
            message = self.message.format(layers=len(model.weight_layers), kinds=kinds)
            if isinstance(model.node, ast.ClassDef):
                yield self.finding(ctx.path, class_name_range(ctx, model.node), message=message)
            elif isinstance(model.node, ast.Call):
                yield self.report(ctx, model.node.func, message=message)

    def _qualifies(self, model: ModelDef) -> bool:
        if not model.complete or model.residual or model.has_norm:
            return False
        if any(op.branch for op in model.ops):
            return False
        if len(model.weight_layers) < self.opt("min-depth"):
            return False
        activations = {op.name for op in model.ops if op.kind == "activation"}
        return "selu" not in activations
