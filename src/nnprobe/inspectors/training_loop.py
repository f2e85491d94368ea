"""NP120 and NP121: hand-written training and evaluation loops that get PyTorch's state wrong.

Both rules follow the loop across one or two levels of local function calls (a per-batch
`train_step()`, an `evaluate(model, loader)` helper, an LBFGS closure), because that is how real
scripts split their loops; what they cannot see (a helper imported from another module that is
handed the optimizer) keeps them silent.
"""

from __future__ import annotations

import ast
import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from nnprobe.core.finding import Confidence, Edit, Finding, Fix, Position, Range, Severity
from nnprobe.core.registry import register
from nnprobe.inspectors.regularization import identifier_tokens
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import FunctionNode, ScriptContext
from nnprobe.inspectors.script.loops import OPTIM, SCHEDULER_PREFIXES, Loop
from nnprobe.inspectors.script.models import ModelDef, Op
from nnprobe.inspectors.script.walk import walk
from nnprobe.inspectors.serialization import edits_parse

_LOOPS = ast.For | ast.AsyncFor | ast.While
_FUNCTIONS = ast.FunctionDef | ast.AsyncFunctionDef
_MAX_CALL_DEPTH = 3


def _position(node: ast.AST) -> tuple[int, int]:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _statement(ctx: ScriptContext, node: ast.AST) -> ast.stmt | None:
    if isinstance(node, ast.stmt):
        return node
    for ancestor in ctx.ancestors(node):
        if isinstance(ancestor, ast.stmt):
            return ancestor
    return None


def _last_identifier(expr: ast.expr) -> str | None:
    while isinstance(expr, ast.Subscript | ast.Call):
        expr = expr.value if isinstance(expr, ast.Subscript) else expr.func
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        return expr.attr
    return None


def _inside(ctx: ScriptContext, node: ast.AST, container: ast.AST) -> bool:
    return node is container or any(a is container for a in ctx.ancestors(node))


def _uses(ctx: ScriptContext) -> dict[str, list[ast.expr]]:
    """Names read anywhere and `self.<attr>` reads, by name, indexed once per script."""
    return ctx.shared(_index_uses)


def _index_uses(ctx: ScriptContext) -> dict[str, list[ast.expr]]:
    index: dict[str, list[ast.expr]] = {}
    for node in ctx.nodes(ast.Name, ast.Attribute):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            index.setdefault(node.id, []).append(node)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            index.setdefault(node.attr, []).append(node)
    return index


def references(ctx: ScriptContext, fn: FunctionNode) -> list[ast.expr]:
    """Where a local function is used: `train_step(...)`, `self.train_step(...)`, or passed on by
    name (`optimizer.step(closure)`)."""
    cls = ctx.enclosing_class(fn)
    method = cls is not None and ctx.parent(fn) is cls
    found: list[ast.expr] = []
    for node in _uses(ctx).get(fn.name, []):
        if method:
            if isinstance(node, ast.Attribute) and ctx.enclosing_class(node) is cls:
                found.append(node)
        elif isinstance(node, ast.Name) and any(b.node is fn for b in ctx.bindings(node.id, node)):
            found.append(node)
    return found


def local_functions(ctx: ScriptContext, expr: ast.AST) -> list[FunctionNode]:
    """The local defs a name or `self.method` used at `expr` refers to."""
    if isinstance(expr, ast.Name):
        return [b.node for b in ctx.bindings(expr.id, expr) if isinstance(b.node, _FUNCTIONS)]
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
    ):
        cls = ctx.enclosing_class(expr)
        if cls is not None:
            return [s for s in cls.body if isinstance(s, _FUNCTIONS) and s.name == expr.attr]
    return []


class _Spans:
    """Calls and assignments of a script in source order, so the ones inside a loop or function
    are a slice (two bisections) instead of a walk of its subtree."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.nodes = ctx.nodes(ast.Call, ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)
        self.keys = [_position(n) for n in self.nodes]

    def within(self, node: ast.AST) -> list[ast.AST]:
        start = _position(node)
        end = (getattr(node, "end_lineno", 0) or 0, getattr(node, "end_col_offset", 0) or 0)
        return self.nodes[bisect.bisect_left(self.keys, start) : bisect.bisect_left(self.keys, end)]


def _spans(ctx: ScriptContext) -> _Spans:
    return ctx.shared(_Spans)


def reachable(ctx: ScriptContext, root: ast.AST) -> list[ast.AST]:
    """`root` and the local functions it calls or passes on by name, transitively (a few levels)."""
    roots: list[ast.AST] = [root]
    seen: set[ast.AST] = {root}
    frontier: list[tuple[ast.AST, int]] = [(root, 0)]
    while frontier:
        node, depth = frontier.pop()
        if depth >= _MAX_CALL_DEPTH:
            continue
        for inner in _spans(ctx).within(node):
            if not isinstance(inner, ast.Call):
                continue
            for used in (inner.func, *inner.args):
                name = used.id if isinstance(used, ast.Name) else getattr(used, "attr", None)
                if name not in ctx.functions:
                    continue
                for fn in local_functions(ctx, used):
                    if fn not in seen and not _inside(ctx, fn, node):
                        seen.add(fn)
                        roots.append(fn)
                        frontier.append((fn, depth + 1))
    return roots


def region_nodes(ctx: ScriptContext, roots: Iterable[ast.AST]) -> list[ast.AST]:
    """The calls and assignments inside any of `roots`."""
    found: list[ast.AST] = []
    for root in roots:
        found.extend(_spans(ctx).within(root))
    return found


def is_backward(ctx: ScriptContext, node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    if isinstance(node.func, ast.Attribute) and node.func.attr == "backward":
        return True
    return ctx.call_name(node) == "torch.autograd.backward"


def is_zero_grad(node: ast.AST) -> bool:
    """optimizer/model.zero_grad(), p.grad = None, p.grad.zero_(), del p.grad, zero_grad(model)."""
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in ("zero_grad", "clear_grad"):
                return True
            if func.attr in ("zero_", "fill_", "mul_") and _mentions_grad(func.value):
                return True
        name = _last_identifier(func)
        tokens = identifier_tokens(name) if name is not None else []
        return (
            len(tokens) > 1
            and tokens[0] in ("zero", "clear", "reset")
            and tokens[1].startswith("grad")
        )
    targets: list[ast.expr] = []
    if isinstance(node, ast.Assign):
        targets = node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        targets = [node.target]
    elif isinstance(node, ast.Delete):
        targets = node.targets
    return any(_mentions_grad(t) for t in targets)


def _mentions_grad(expr: ast.expr) -> bool:
    while isinstance(expr, ast.Attribute | ast.Subscript):
        if isinstance(expr, ast.Attribute) and expr.attr == "grad":
            return True
        expr = expr.value
    return False


_OPTIMIZER_TOKENS = frozenset(
    {"optimizer", "optimizers", "optim", "opt", "optimiser", "optimisers"}
)
_NOT_OPTIMIZER_TOKENS = frozenset({"scheduler", "sched", "lr", "env", "environment", "sim"})


def optimizer_of_step(ctx: ScriptContext, call: ast.Call) -> ast.expr | None:
    """For `optimizer.step()` (or `scaler.step(optimizer)`), the optimizer expression; None when
    the `.step()` is not an optimizer's (a scheduler's, an RL environment's, unknown)."""
    func = call.func
    if not isinstance(func, ast.Attribute) or func.attr != "step":
        return None
    receiver = func.value
    resolved = ctx.resolve(receiver)
    if isinstance(resolved, ast.Call):
        name = ctx.call_name(resolved) or ""
        if name.startswith(SCHEDULER_PREFIXES):
            return None
        if name.startswith(OPTIM) and name.rsplit(".", 1)[-1][:1].isupper():
            return receiver
        if name.endswith("GradScaler"):
            return call.args[0] if call.args else None
        if name.startswith(("torch.", "gym.", "gymnasium.")):
            return None
    identifier = _last_identifier(receiver)
    if identifier is None:
        return None
    tokens = set(identifier_tokens(identifier))
    if tokens & _NOT_OPTIMIZER_TOKENS:
        return None
    if tokens & _OPTIMIZER_TOKENS:
        return receiver
    if "scaler" in tokens and call.args:
        return call.args[0]
    return None


def repetition_loop(ctx: ScriptContext, node: ast.AST, depth: int = _MAX_CALL_DEPTH) -> Loop | None:
    """The loop that repeats `node`: the innermost loop around it, or, when it sits in a function
    with no loop around it there, the loop around a place that function is called from."""
    child: ast.AST = node
    for ancestor in ctx.ancestors(node):
        if isinstance(ancestor, _LOOPS):
            repeated = child in ancestor.body
            if repeated or (isinstance(ancestor, ast.While) and child is ancestor.test):
                return ancestor
        if isinstance(ancestor, _FUNCTIONS | ast.Lambda):
            if depth == 0 or isinstance(ancestor, ast.Lambda):
                return None
            for reference in references(ctx, ancestor):
                loop = repetition_loop(ctx, reference, depth - 1)
                if loop is not None:
                    return loop
            return None
        child = ancestor
    return None


_SAFE_CALLEE_PREFIXES = ("torch.", "print", "len", "float", "int", "str", "isinstance", "getattr")


def _hands_optimizer_away(ctx: ScriptContext, nodes: list[ast.AST], optimizer_text: str) -> bool:
    """A call we cannot follow receives the optimizer (it may clear the gradients itself)."""
    for node in nodes:
        if not isinstance(node, ast.Call) or local_functions(ctx, node.func):
            continue
        if isinstance(node.func, ast.Attribute) and node.func.attr in (
            "step",
            "unscale_",
            "update",
            "scale",
        ):
            continue
        name = ctx.call_name(node) or ""
        if name.startswith(_SAFE_CALLEE_PREFIXES):
            continue
        arguments = [*node.args, *(kw.value for kw in node.keywords)]
        if any(ctx.source(a) == optimizer_text for a in arguments):
            return True
    return False


@register
class MissingZeroGrad(StaticRule):
    """
    ## What it does
    Finds a training loop that calls `.backward()` and an optimizer's `.step()` but never clears
    the gradients.

    Clearing means `optimizer.zero_grad()`, `model.zero_grad()`, `set_to_none`, `p.grad = None` or
    `p.grad.zero_()` anywhere in the loop, including the per-batch functions it calls. Gradient
    accumulation (`zero_grad()` inside `if (i + 1) % accum == 0:`) and one step per epoch with
    `zero_grad()` in the epoch loop are recognised as correct.

    ## Why is this bad?
    `backward()` adds into `.grad`; it does not overwrite it. Without clearing, every step applies
    the sum of the gradients of all batches seen so far: the effective step grows with each
    iteration, the updates point along stale directions, and the loss usually diverges or
    oscillates instead of falling.

    ## Example
    ```python
    for xb, yb in loader:
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()  # error: [NP120]
    ```

    ## How to fix
    Call `optimizer.zero_grad()` once per optimizer step: before the forward pass or just before
    `loss.backward()`, or right after `optimizer.step()` when accumulating gradients over several
    batches. The fix inserts it before the `backward()` call (after the `step()` call for
    accumulation loops).

    ## Options
    None.

    ## References
    - PyTorch tutorial, "Zeroing out gradients in PyTorch"
    - dslinter W5517 (missing `zero_grad` in a PyTorch training loop)
    """

    code = "NP120"
    name = "missing-zero-grad"
    message = "gradients are never cleared in this training loop"
    severity = Severity.ERROR
    confidence = Confidence.HIGH
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        if not any(is_backward(ctx, call) for call in ctx.calls):
            return
        regions: dict[Loop, tuple[list[ast.AST], list[ast.AST], bool]] = {}
        for call in ctx.calls:
            optimizer = optimizer_of_step(ctx, call)
            if optimizer is None:
                continue
            loop = repetition_loop(ctx, call)
            if loop is None:
                continue
            if loop not in regions:
                nodes = region_nodes(ctx, reachable(ctx, loop))
                backwards = [n for n in nodes if is_backward(ctx, n)]
                regions[loop] = (nodes, backwards, any(is_zero_grad(n) for n in nodes))
            region, backwards, cleared = regions[loop]
            if not backwards or cleared:
                continue
            optimizer_text = ctx.source(optimizer)
            if not optimizer_text or _hands_optimizer_away(ctx, region, optimizer_text):
                continue
            assert isinstance(call.func, ast.Attribute)
            yield self._finding(ctx, call, optimizer, optimizer_text, loop, backwards)

    def _finding(
        self,
        ctx: ScriptContext,
        step: ast.Call,
        optimizer: ast.expr,
        optimizer_text: str,
        loop: Loop,
        backwards: list[ast.AST],
    ) -> Finding:
        backward = _paired_backward(ctx, step, backwards)
        backward_text = ctx.source(backward) if backward is not None else "backward()"
        step_text = ctx.source(step)
        elsewhere = _zero_grad_outside(ctx, loop)
        if elsewhere is not None:
            line = ctx.range_of(elsewhere).start.line
            detail = (
                f"the only zero_grad() (line {line}) runs outside this loop, so "
                "gradients pile up across its iterations and each step applies their running sum"
            )
        else:
            detail = (
                f"nothing in this loop calls zero_grad() or sets .grad to None, so every "
                f"{backward_text} adds to the gradients of all earlier iterations and each step "
                "applies their running sum"
            )
        after_step = backward is not None and _accumulates(ctx, step, backward)
        where = f"right after {step_text}" if after_step else f"before {backward_text}"
        message = (
            f"{step_text} applies gradients that are never cleared: {detail}; call "
            f"{optimizer_text}.zero_grad() once per step ({where})"
        )
        fix = None
        if backward is not None:
            fix = _zero_grad_fix(ctx, step, optimizer, optimizer_text, backward, after_step)
        return self.report(ctx, step, message=message, fix=fix)


def _paired_backward(
    ctx: ScriptContext, step: ast.Call, backwards: list[ast.AST]
) -> ast.AST | None:
    """The backward() whose gradients this step applies: the last one before it in the same
    function, else one in a function nested in it (an LBFGS closure), else in the loop's helper."""
    function = ctx.enclosing_function(step)
    same = [
        b
        for b in backwards
        if ctx.enclosing_function(b) is function and _position(b) < _position(step)
    ]
    if same:
        return same[-1]
    nested = [
        b
        for b in backwards
        if function is None or _inside(ctx, ctx.enclosing_function(b) or ctx.tree, function)
    ]
    if nested:
        return nested[0]
    return None


def _zero_grad_outside(ctx: ScriptContext, loop: Loop) -> ast.AST | None:
    """A zero_grad() in the function (or the loops) around `loop` but not in it."""
    scope: ast.AST = ctx.enclosing_function(loop) or ctx.tree
    for node in walk(scope):
        if is_zero_grad(node) and not _inside(ctx, node, loop):
            return node
    return None


def _same_frequency(ctx: ScriptContext, a: ast.stmt, b: ast.stmt) -> bool:
    """Whether two statements run equally often: only `with` blocks lie between each of them and
    their closest common ancestor."""
    chain_a = [a, *ctx.ancestors(a)]
    chain_b = [b, *ctx.ancestors(b)]
    common = next((node for node in chain_a if node in chain_b), None)
    if common is None:
        return False
    for chain in (chain_a, chain_b):
        for node in chain[1 : chain.index(common)]:
            if not isinstance(node, ast.With | ast.AsyncWith):
                return False
    return not isinstance(common, ast.If | ast.Try) or common is a or common is b


def _accumulates(ctx: ScriptContext, step: ast.Call, backward: ast.AST) -> bool:
    """Whether the step runs less often than the backward pass in the same function (gradient
    accumulation, one step per epoch): then gradients must be cleared after the step."""
    step_stmt = _statement(ctx, step)
    backward_stmt = _statement(ctx, backward)
    if step_stmt is None or backward_stmt is None:
        return False
    if ctx.enclosing_function(step) is not ctx.enclosing_function(backward):
        return False
    return not _same_frequency(ctx, backward_stmt, step_stmt)


def _own_line_start(ctx: ScriptContext, stmt: ast.stmt) -> bool:
    line = ctx.lines[stmt.lineno - 1] if stmt.lineno <= len(ctx.lines) else ""
    column = ctx.range_of(stmt).start.column
    return line[: column - 1].strip() == ""


def _own_line_end(ctx: ScriptContext, stmt: ast.stmt) -> bool:
    end = ctx.range_of(stmt).end
    line = ctx.lines[end.line - 1] if end.line <= len(ctx.lines) else ""
    rest = line[end.column - 1 :].strip()
    return rest == "" or rest.startswith("#")


def _zero_grad_fix(
    ctx: ScriptContext,
    step: ast.Call,
    optimizer: ast.expr,
    optimizer_text: str,
    backward: ast.AST,
    after_step: bool,
) -> Fix | None:
    step_stmt = _statement(ctx, step)
    backward_stmt = _statement(ctx, backward)
    if step_stmt is None or backward_stmt is None or "\n" in optimizer_text:
        return None
    if not _visible_at(ctx, optimizer, backward):
        return None
    insert = f"{optimizer_text}.zero_grad()"
    edit: Edit | None = None
    if not after_step:
        if _own_line_start(ctx, backward_stmt):
            start = Position(backward_stmt.lineno, 1)
            indent = ctx.line_indent(backward_stmt.lineno)
            edit = Edit(Range(start, start), f"{indent}{insert}\n")
    elif _own_line_start(ctx, step_stmt) and _own_line_end(ctx, step_stmt):
        # Gradients accumulate over several backward passes: clear them after the step.
        end_line = ctx.range_of(step_stmt).end.line
        end = Position(end_line, len(ctx.lines[end_line - 1]) + 1)
        indent = ctx.line_indent(step_stmt.lineno)
        edit = Edit(Range(end, end), f"\n{indent}{insert}")
    if edit is None or not edits_parse(ctx, [edit]):
        return None
    return Fix(f"Insert {insert}", (edit,))


def _visible_at(ctx: ScriptContext, optimizer: ast.expr, at: ast.AST) -> bool:
    """Whether the optimizer expression means the same thing where the fix would put it."""
    root = optimizer
    while isinstance(root, ast.Attribute):
        root = root.value
    if not isinstance(root, ast.Name):
        return False
    if root.id == "self":
        return ctx.enclosing_class(at) is not None and ctx.enclosing_class(
            at
        ) is ctx.enclosing_class(optimizer)
    here = ctx.bindings(root.id, at)
    there = ctx.bindings(root.id, optimizer)
    if not here or [b.node for b in here] != [b.node for b in there]:
        return False
    return all(b.kind in ("param", "import") or _position(b.node) < _position(at) for b in here)


_EVAL_FUNCTION_TOKENS = frozenset(
    {
        "eval",
        "evaluate",
        "evaluation",
        "validate",
        "validation",
        "val",
        "valid",
        "test",
        "predict",
        "prediction",
        "inference",
        "infer",
    }
)
_TRAINING_FUNCTION_TOKENS = frozenset({"train", "training", "step", "forward", "fit", "backward"})
_EVAL_DATA_TOKENS = frozenset({"val", "valid", "validation", "test", "eval", "dev", "holdout"})
_MODEL_TOKENS = frozenset({"model", "net", "network", "classifier", "mlp", "cnn", "convnet"})
_NO_GRAD = frozenset(
    {
        "torch.no_grad",
        "torch.inference_mode",
        "torch.autograd.no_grad",
        "torch.autograd.grad_mode.no_grad",
        "torch.autograd.inference_mode",
    }
)
_FRAMEWORK_BASES = ("lightning", "pytorch_lightning")


@dataclass
class _Context:
    """Where a model call counts as evaluation: the outermost evaluation function or loop."""

    key: ast.AST
    description: str


def is_model_call(ctx: ScriptContext, call: ast.Call) -> bool:
    """A forward pass through a network instance: `model(x)`, `self.net(x)`, `cnn(x)`; not a
    constructor (`Net()`, `resnet18()`) and not a local function."""
    func = call.func
    if not isinstance(func, ast.Name | ast.Attribute):
        return False
    if isinstance(func, ast.Name):
        if func.id == "self" or func.id[:1].isupper():
            return False
        bindings = ctx.bindings(func.id, func)
        if any(b.kind in ("def", "class", "import") for b in bindings):
            return False
        if not bindings and func.id in ctx.imports:
            return False
    elif func.attr[:1].isupper():
        return False
    if local_functions(ctx, func):
        return False
    if ctx.models.for_expr(func) is not None:
        return True
    identifier = _last_identifier(func)
    if identifier is None:
        return False
    tokens = identifier_tokens(identifier)
    return bool(tokens) and (tokens[-1] in _MODEL_TOKENS or identifier.lower().endswith("net"))


def _new_eval_data_cache(ctx: ScriptContext) -> dict[ast.AST, bool]:
    return {}


def _eval_data(ctx: ScriptContext, expr: ast.AST) -> bool:
    """Whether an expression names evaluation data (`val_loader`, `X_test`, `loaders["val"]`)."""
    cache = ctx.shared(_new_eval_data_cache)
    if expr not in cache:
        cache[expr] = bool(_data_tokens(ctx, expr) & _EVAL_DATA_TOKENS)
    return cache[expr]


def _data_tokens(ctx: ScriptContext, expr: ast.AST) -> set[str]:
    """Tokens of the names along an expression's spine: `test_x[:10].view(-1, 28)` gives test, x;
    `loaders["val"]` gives loaders, val; `enumerate(val_loader)` gives val, loader."""
    tokens: set[str] = set()
    stack: list[ast.AST] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name):
            tokens.update(identifier_tokens(node.id))
        elif isinstance(node, ast.Attribute):
            tokens.update(identifier_tokens(node.attr))
            stack.append(node.value)
        elif isinstance(node, ast.Subscript):
            stack.extend((node.value, node.slice))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if len(node.value) <= 40:
                tokens.update(identifier_tokens(node.value))
        elif isinstance(node, ast.Call):
            stack.append(node.func)
            if isinstance(node.func, ast.Name):  # enumerate(val_loader), tqdm(test_loader)
                stack.extend(node.args[:1])
        elif isinstance(node, ast.Starred):
            stack.append(node.value)
    return tokens


def _is_eval_function(ctx: ScriptContext, fn: FunctionNode) -> bool:
    tokens = identifier_tokens(fn.name)
    if not tokens or tokens[0] not in _EVAL_FUNCTION_TOKENS:
        return False
    if set(tokens) & _TRAINING_FUNCTION_TOKENS:
        return False
    # A pytest module's test_* functions are unit tests, not evaluation passes.
    return not (tokens[0] == "test" and "pytest" in ctx.imports)


def _framework_method(ctx: ScriptContext, fn: FunctionNode) -> bool:
    cls = ctx.enclosing_class(fn)
    if cls is None:
        return False
    if fn.name == "forward" or fn.name.endswith("_step"):
        return True
    for base in cls.bases:
        qual = ctx.qualname(base) or ""
        if qual.split(".")[0] in _FRAMEWORK_BASES:
            return True
    return False


_SYNTHETIC_INPUTS = frozenset(
    f"torch.{name}" for name in ("randn", "rand", "randint", "zeros", "ones", "empty", "full")
)


def _synthetic_input(ctx: ScriptContext, call: ast.Call) -> bool:
    """`net(torch.randn(1, 3, 32, 32))`: a shape check on made-up data, not an evaluation."""
    if not call.args:
        return False
    for arg in call.args:
        while (
            isinstance(arg, ast.Call)
            and isinstance(arg.func, ast.Attribute)
            and arg.func.attr in ("to", "cuda", "float")
        ):
            arg = arg.func.value
        if not (isinstance(arg, ast.Call) and ctx.call_name(arg) in _SYNTHETIC_INPUTS):
            return False
    return True


def _takes_inputs(fn: FunctionNode) -> bool:
    names = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs)]
    return bool([n for n in names if n not in ("self", "cls")] or fn.args.vararg)


def _evaluation_context(ctx: ScriptContext, call: ast.Call) -> _Context | None:
    if _synthetic_input(ctx, call):
        return None
    found: _Context | None = None
    child: ast.AST = call
    looped = False
    for ancestor in ctx.ancestors(call):
        if isinstance(ancestor, _FUNCTIONS):
            if _framework_method(ctx, ancestor):
                return None
            # A function without inputs that runs the model once is a smoke test, not a pass
            # over evaluation data.
            if _is_eval_function(ctx, ancestor) and (looped or _takes_inputs(ancestor)):
                found = _Context(ancestor, f"{ancestor.name}()")
        elif isinstance(ancestor, ast.For | ast.AsyncFor) and child is not ancestor.iter:
            looped = True
            if _eval_data(ctx, ancestor.iter):
                found = _Context(ancestor, f"the loop over {ctx.source(ancestor.iter)}")
        elif isinstance(ancestor, ast.While):
            looped = True
        elif isinstance(ancestor, ast.ListComp | ast.GeneratorExp | ast.SetComp | ast.DictComp):
            looped = True
            iters = [g.iter for g in ancestor.generators]
            if any(_eval_data(ctx, it) for it in iters):
                found = _Context(ancestor, "the comprehension over evaluation data")
        elif isinstance(ancestor, ast.ClassDef):
            break
        child = ancestor
    if found is None:
        arguments = [*call.args, *(kw.value for kw in call.keywords)]
        if any(_eval_data(ctx, a) for a in arguments):
            found = _Context(call, ctx.source(call))
    return found


def _trains_here(ctx: ScriptContext, context: _Context, call: ast.Call) -> bool:
    """Whether the evaluation context also runs backward (then it is a training pass)."""
    if context.key is not call:
        return any(is_backward(ctx, n) for n in region_nodes(ctx, reachable(ctx, context.key)))
    stmt = _statement(ctx, call)
    parent = ctx.parent(stmt) if stmt is not None else None
    if stmt is None or parent is None:
        return False
    for field in ("body", "orelse", "finalbody"):
        body = getattr(parent, field, None)
        if isinstance(body, list) and stmt in body:
            after = body[body.index(stmt) :]
            return any(is_backward(ctx, n) for n in region_nodes(ctx, after))
    return False


def _mode_call(ctx: ScriptContext, node: ast.AST) -> str | None:
    """Whether a call switches to eval mode (`m.eval()`, `m.train(False)`): "eval", or to
    training mode (`m.train()`, `m.train(True)`): "train"."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return None
    if node.func.attr == "eval" and not node.args and not node.keywords:
        return "eval"
    if node.func.attr == "train" and len(node.args) + len(node.keywords) <= 1:
        argument = ctx.argument(node, "mode", 0)
        if argument is None:
            return "train"
        value = ctx.value(argument)
        return "train" if value is True else "eval"  # unknown counts as eval: stay silent
    return None


def _direct_calls(ctx: ScriptContext, scope: ast.AST) -> list[ast.Call]:
    """The calls made by a function's own body (or the module's), grouped once per script."""
    return ctx.shared(_calls_by_scope).get(scope, [])


def _calls_by_scope(ctx: ScriptContext) -> dict[ast.AST, list[ast.Call]]:
    groups: dict[ast.AST, list[ast.Call]] = {}
    for call in ctx.calls:
        groups.setdefault(ctx.enclosing_function(call) or ctx.tree, []).append(call)
    return groups


def _mode_before(
    ctx: ScriptContext, node: ast.AST, depth: int = _MAX_CALL_DEPTH
) -> ast.Call | None:
    """The last `.eval()`/`.train()` call that runs before `node` in its function, or, when there
    is none, before a call of that function (one found eval is enough)."""
    function = ctx.enclosing_function(node)
    scope: ast.AST = function or ctx.tree
    modes = [
        n
        for n in _direct_calls(ctx, scope)
        if _position(n) < _position(node) and _mode_call(ctx, n) is not None
    ]
    if modes:
        return max(modes, key=_position)
    if function is None or depth == 0:
        return None
    result: ast.Call | None = None
    for reference in references(ctx, function):
        before = _mode_before(ctx, reference, depth - 1)
        if before is not None and _mode_call(ctx, before) == "eval":
            return before
        result = result or before
    return result


def _grad_disabled(ctx: ScriptContext, node: ast.AST, depth: int = _MAX_CALL_DEPTH) -> bool:
    """Whether `node` runs under torch.no_grad()/inference_mode() (a `with`, a decorator, an
    earlier `torch.set_grad_enabled(False)`, or around every call of its function)."""
    for ancestor in ctx.ancestors(node):
        if isinstance(ancestor, ast.With | ast.AsyncWith):
            if any(_disables_grad(ctx, item.context_expr) for item in ancestor.items):
                return True
        if isinstance(ancestor, _FUNCTIONS):
            if any(_disables_grad(ctx, d) for d in ancestor.decorator_list):
                return True
    function = ctx.enclosing_function(node)
    scope: ast.AST = function or ctx.tree
    for inner in _direct_calls(ctx, scope):
        if (
            ctx.call_name(inner) == "torch.set_grad_enabled"
            and _position(inner) < _position(node)
            and ctx.value(ctx.argument(inner, "mode", 0)) is not True
        ):
            return True
    if function is None or depth == 0:
        return False
    callers = references(ctx, function)
    return bool(callers) and all(_grad_disabled(ctx, c, depth - 1) for c in callers)


def _disables_grad(ctx: ScriptContext, expr: ast.expr) -> bool:
    target = expr.func if isinstance(expr, ast.Call) else expr
    name = ctx.qualname(target) or ""
    if name in _NO_GRAD:
        return True
    if name == "torch.set_grad_enabled" and isinstance(expr, ast.Call):
        return ctx.value(ctx.argument(expr, "mode", 0)) is not True
    return False


def _mode_dependent_ops(model: ModelDef | None) -> list[Op]:
    """Layers that behave differently in train and eval mode: dropout, batch norm."""
    if model is None:
        return []
    found = []
    for op in model.ops:
        if op.kind == "dropout" and op.call is not None:
            found.append(op)
        elif op.kind == "dropout" and isinstance(op.node, ast.Call):
            training = next((kw for kw in op.node.keywords if kw.arg == "training"), None)
            if training is not None and "training" in ast.unparse(training.value):
                found.append(op)
        elif op.kind == "norm" and "BatchNorm" in op.name:
            found.append(op)
    return found


@register
class EvalWithoutEvalMode(StaticRule):
    """
    ## What it does
    Finds evaluation code that runs the model in training mode, with no `model.eval()` before it.

    Evaluation code is a function named like `evaluate`, `validate`, `test` or `predict`, a loop
    over `val_loader`/`test_loader`, or a call such as `model(X_val)`. `model.eval()` counts when
    it is the last mode switch before the call, in its function or before a call of that
    function. The rule warns when neither `model.eval()` nor `torch.no_grad()` /
    `torch.inference_mode()` is in effect, and also when only `no_grad` is, if the model is known
    to contain Dropout or BatchNorm. A model known to have neither needs no eval mode, and stays
    unreported.

    ## Why is this bad?
    `model.eval()` switches Dropout off and makes BatchNorm use its running statistics; without it
    validation metrics are noisy and wrong (and BatchNorm's running statistics are updated with
    validation data). `torch.no_grad()` does *not* do that: it only stops autograd from recording
    the forward pass, which otherwise wastes memory and time. Evaluation wants both.

    ## Example
    ```python
    def evaluate(model, loader):
        correct = 0
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()  # warning: [NP121]
        return correct
    ```

    ## How to fix
    Call `model.eval()` before evaluating and `model.train()` before training resumes, and run
    the evaluation under `with torch.no_grad():` (or decorate the function with
    `@torch.no_grad()`).

    ## Options
    None.

    ## References
    - PyTorch documentation, `torch.nn.Module.eval` and "Locally disabling gradient computation"
    - PyTorch examples, mnist/main.py (`test()` with `model.eval()` and `torch.no_grad()`)
    """

    code = "NP121"
    name = "eval-without-eval-mode"
    message = "evaluation runs the model without model.eval()"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        reported: set[ast.AST] = set()
        training: dict[ast.AST, bool] = {}
        for call in ctx.calls:
            if not is_model_call(ctx, call):
                continue
            context = _evaluation_context(ctx, call)
            if context is None or context.key in reported:
                continue
            if context.key not in training or context.key is call:
                training[context.key] = _trains_here(ctx, context, call)
            if training[context.key]:
                continue
            mode = _mode_before(ctx, call)
            kind = _mode_call(ctx, mode) if mode is not None else None
            if kind == "eval":
                continue
            if kind == "train" and mode is not None and _inside(ctx, mode, context.key):
                continue  # switched to training mode on purpose (Monte Carlo dropout)
            model = ctx.models.for_expr(call.func) or ctx.models.the_model(call.func)
            layers = _mode_dependent_ops(model)
            if model is not None and model.complete and not layers:
                continue  # nothing in this network behaves differently in eval mode
            no_grad = _grad_disabled(ctx, call)
            if no_grad and not layers:
                continue
            reported.add(context.key)
            yield self._finding(ctx, call, context, layers, no_grad, mode)

    def _finding(
        self,
        ctx: ScriptContext,
        call: ast.Call,
        context: _Context,
        layers: list[Op],
        no_grad: bool,
        mode: ast.Call | None,
    ) -> Finding:
        model_text = ctx.source(call.func)
        subject = (
            ctx.source(call) if context.key is call else f"{model_text} in {context.description}"
        )
        if mode is not None:
            state = f"the last mode switch before it is {ctx.source(mode)} on line {mode.lineno}"
        else:
            state = f"{model_text}.eval() is never called before it"
        if layers:
            first: dict[str, int] = {}
            for op in layers:
                first.setdefault(op.name.rsplit(".", 1)[-1], _line_of(op))
            named = " and ".join(f"{name} (line {line})" for name, line in first.items())
            verb = "keeps its" if len(first) == 1 else "keep their"
            effect = f"{named} {verb} training behaviour, so the metrics are wrong"
            confidence = Confidence.HIGH
        else:
            effect = "any dropout or batch norm in the model keeps its training behaviour"
            confidence = Confidence.MEDIUM
        if no_grad:
            message = (
                f"{subject} runs under torch.no_grad() but in training mode ({state}): {effect}, "
                f"and no_grad() does not change that; call {model_text}.eval() before evaluating "
                f"(and {model_text}.train() after)"
            )
        else:
            message = (
                f"{subject} runs without {model_text}.eval() or torch.no_grad() ({state}): "
                f"{effect}, and every forward pass records an autograd graph; call "
                f"{model_text}.eval() before evaluating (and {model_text}.train() after) and "
                "wrap it in torch.no_grad()"
            )
        return self.report(ctx, call, message=message, confidence=confidence)


def _line_of(op: Op) -> int:
    return getattr(op.node, "lineno", 0)
