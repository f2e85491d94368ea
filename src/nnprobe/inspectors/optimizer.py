"""NP101-NP103, NP115, NP116: optimizer settings read from the script, checked against the range
each optimizer is known to train in.

A learning rate means different things to different optimizers: SGD's is the step itself, Adam's a
bound on each weight's step, and Adadelta's and LBFGS's a multiplier on a step that is already sized
(1.0 is their default). So the ranges are per optimizer family, and an optimizer outside the known
families is left alone. Where the number the optimizer is built with is not the one it trains at
(OneCycleLR/CyclicLR overwrite it, LambdaLR scales it by an arbitrary factor, a loop writes
`param_group["lr"]`), the rules look at what really drives it or stay silent.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property

from nnprobe.core.finding import Confidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import ScriptContext
from nnprobe.inspectors.script.lists import range_length
from nnprobe.inspectors.script.loops import Loop, OptimizerCall, TrainingLoop
from nnprobe.inspectors.script.walk import walk

SCHED = "torch.optim.lr_scheduler."
SGD_FAMILY = frozenset({"SGD", "ASGD"})
ADAPTIVE = frozenset(
    {"Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam", "SparseAdam"}
)
# Their lr multiplies a step the method has already sized; 1.0 is the default and the norm.
SELF_SCALED = frozenset({"Adadelta", "LBFGS"})
# Optimizers that shrink their own steps over time (accumulated squares, line search, sign-based
# step adaptation) and so do not need an external schedule.
SELF_DECAYING = frozenset({"Adadelta", "Adagrad", "LBFGS", "Rprop", "Adafactor"})
DECOUPLED = frozenset({"AdamW", "Adafactor"})
# Positional index of weight_decay in each torch.optim constructor (params is 0, lr is 1).
WEIGHT_DECAY_POSITION = {
    "SGD": 4,
    "Adam": 4,
    "AdamW": 4,
    "Adadelta": 4,
    "Adagrad": 3,
    "Adamax": 4,
    "ASGD": 5,
    "NAdam": 4,
    "RAdam": 4,
    "RMSprop": 4,
    "Adafactor": 5,
}
# Schedulers that replace the optimizer's lr with their own (max_lr is the lr to check).
OVERRIDING = {SCHED + "OneCycleLR": 1, SCHED + "CyclicLR": 2}  # -> position of max_lr
SCALING = frozenset({SCHED + "LambdaLR"})
_LR_NAME = re.compile(r"(?:^|_)(?:lr|learning_?rate)(?:$|_)", re.IGNORECASE)
_SCHEDULER_NAME = re.compile(r"sched|swalr|warmup|annealing", re.IGNORECASE)
_SCALE_NAME = re.compile(r"batch|world_size|num_gpus|n_gpus?|num_devices|(?:^|_)bs$", re.I)
_BATCH_NAME = re.compile(r"batch|(?:^|_)b(?:atch)?_?idx$", re.IGNORECASE)


@dataclass
class Setting:
    """One statically known hyperparameter: the value, and the source text it comes from."""

    value: float
    expr: ast.expr  # the value expression
    anchor: ast.AST  # what to underline: `lr=0.3`, a positional `0.3`, or `"lr": 0.3`
    anchor_end: ast.AST | None = None
    where: str = ""  # "", "param group", or "OneCycleLR max_lr"

    def shown(self, ctx: ScriptContext) -> str:
        """The value, with the expression it came from when that is not the literal itself."""
        text = f"{self.value:g}"
        source = ctx.source(self.expr)
        if source and not isinstance(self.expr, ast.Constant | ast.UnaryOp):
            return f"{text} ({source})"
        return text


def _fmt(value: float) -> str:
    return f"{value:g}"


def argument_node(call: ast.Call, keyword: str, position: int | None) -> tuple[ast.expr, ast.AST]:
    """(value, node to underline) for a parameter passed by keyword or by position; raises
    LookupError when it is not passed."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value, kw
    value = ScriptContext.argument(call, keyword, position)
    if value is None:
        raise LookupError(keyword)
    return value, value


def scaled_by_batch(ctx: ScriptContext, expr: ast.expr, depth: int = 6) -> bool:
    """Whether an lr expression follows the linear scaling rule (`base_lr * batch_size / 256`,
    `lr * world_size`): a deliberate large-batch setting, not a typo."""
    if depth <= 0:
        return False
    for node in walk(expr):
        name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
        if isinstance(name, str) and _SCALE_NAME.search(name):
            return True
        if isinstance(node, ast.Name):
            value = ctx.definition(node)
            if value is not None and scaled_by_batch(ctx, value, depth - 1):
                return True
    return False


def _dict_entries(ctx: ScriptContext, expr: ast.expr) -> Iterator[tuple[str, ast.expr, ast.AST]]:
    """(key, value, anchor start) of a dict literal or a `dict(...)` call."""
    if isinstance(expr, ast.Dict):
        for key, value in zip(expr.keys, expr.values, strict=True):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value, value, key
    elif isinstance(expr, ast.Call) and ctx.call_name(expr) == "dict" and not expr.args:
        for kw in expr.keywords:
            if kw.arg is not None:
                yield kw.arg, kw.value, kw


def param_groups(ctx: ScriptContext, call: ast.Call) -> list[ast.expr] | None:
    """The group dicts when an optimizer is built from `[{"params": ..., "lr": ...}, ...]`."""
    params = ctx.argument(call, "params", 0)
    if params is None:
        return None
    params = ctx.resolve(params)
    if not isinstance(params, ast.List | ast.Tuple):
        return None
    groups = [ctx.resolve(e) for e in params.elts]
    if groups and all(
        isinstance(g, ast.Dict) or (isinstance(g, ast.Call) and ctx.call_name(g) == "dict")
        for g in groups
    ):
        return groups
    return None


def group_settings(
    ctx: ScriptContext, call: ast.Call, key: str
) -> Iterator[tuple[ast.expr, ast.AST, ast.expr]]:
    """(value, anchor start, anchor end) of `key` in each param group of an optimizer call."""
    for group in param_groups(ctx, call) or []:
        for name, value, start in _dict_entries(ctx, group):
            if name == key:
                yield value, start, value


class OptimizerFacts:
    """What the rules of this family share about one script, computed once per rule run."""

    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self.optimizers = ctx.loops.optimizers
        self._by_call = {o.call: o for o in self.optimizers}

    def optimizer_of(self, expr: ast.expr | None) -> OptimizerCall | None:
        """The optimizer construction an expression refers to (the file's only one when the
        expression is opaque, like `self.optimizer`)."""
        if expr is None:
            return None
        resolved = self.ctx.resolve(expr)
        for _ in range(4):
            if not isinstance(resolved, ast.Call):
                break
            found = self._by_call.get(resolved)
            if found is not None:
                return found
            returned = self.ctx.returned(resolved)  # a local `make_optimizer(...)` factory
            if returned is None:
                break
            resolved = self.ctx.resolve(returned)
        return self.optimizers[0] if len(self.optimizers) == 1 else None

    @cached_property
    def wrapping(self) -> dict[ast.Call, set[str]]:
        """Optimizer construction -> qualnames of the schedulers that override or scale its lr.
        A scheduler whose optimizer cannot be told is filed under every optimizer."""
        result: dict[ast.Call, set[str]] = {}
        for sched in self.ctx.loops.schedulers:
            name = self.ctx.call_name(sched) or ""
            if name not in OVERRIDING and name not in SCALING:
                continue
            owner = self.optimizer_of(self.ctx.argument(sched, "optimizer", 0))
            targets = [owner] if owner is not None else self.optimizers
            for target in targets:
                result.setdefault(target.call, set()).add(name)
        return result

    def lr_settings(self, opt: OptimizerCall) -> Iterator[Setting]:
        """The optimizer's own lr and its param groups' lrs, when statically known."""
        try:
            expr, anchor = argument_node(opt.call, "lr", 1)
        except LookupError:
            pass
        else:
            value = self.ctx.number(expr)
            if value is not None:
                yield Setting(value, expr, anchor)
        for value_expr, start, end in group_settings(self.ctx, opt.call, "lr"):
            value = self.ctx.number(value_expr)
            if value is not None:
                yield Setting(value, value_expr, start, end, "param group")

    def max_lr_settings(self) -> Iterator[tuple[OptimizerCall, Setting]]:
        """OneCycleLR/CyclicLR max_lr (the peak lr they drive their optimizer at)."""
        for sched in self.ctx.loops.schedulers:
            name = self.ctx.call_name(sched) or ""
            if name not in OVERRIDING:
                continue
            opt = self.optimizer_of(self.ctx.argument(sched, "optimizer", 0))
            if opt is None:
                continue
            try:
                expr, anchor = argument_node(sched, "max_lr", OVERRIDING[name])
            except LookupError:
                continue
            value = self.ctx.value(expr)
            if isinstance(value, list):
                numbers = [v for v in value if isinstance(v, int | float)]
                if len(numbers) != len(value) or not numbers:
                    continue
                peak: float | None = float(max(numbers))
            else:
                peak = self.ctx.number(expr)
            if peak is not None:
                where = f"{name.rsplit('.', 1)[-1]} max_lr"
                yield opt, Setting(peak, expr, anchor, None, where)


def _subject(opt: OptimizerCall, setting: Setting) -> str:
    if setting.where == "param group":
        return f"{opt.kind} param-group learning rate"
    if setting.where:
        return f"{opt.kind} peak learning rate ({setting.where})"
    return f"{opt.kind} learning rate"


@register
class LrTooHigh(StaticRule):
    """
    ## What it does
    Flags a learning rate above the range its optimizer trains in.

    The learning rate is read where it is passed to a `torch.optim` optimizer (by keyword, by
    position, or in a param group) or as the `max_lr` of OneCycleLR/CyclicLR, which replaces the
    optimizer's own value. SGD (with or without momentum) is reported above 0.1, as an error at
    0.3 and above; Adam, AdamW, RMSprop, Adagrad, Adamax, NAdam, RAdam and SparseAdam above 0.01.

    Adadelta and LBFGS are different: their lr multiplies a step the method has already sized,
    and 1.0 is their default and the usual value, so they are only flagged above 10. Rprop and
    Adafactor, whose lr is an initial or relative step size, are not checked. Values that are not
    statically known, an optimizer whose lr is rescaled by LambdaLR, and a learning rate scaled by
    the batch size or the number of devices (the linear scaling rule, `0.1 * batch_size / 256`,
    a deliberate large-batch setting) are left alone.

    ## Why is this bad?
    Too large a step overshoots the minimum along high-curvature directions: the loss oscillates,
    grows, and soon becomes NaN. In the seed experiment a small regression net trained with SGD at
    lr 0.1 and went to NaN at 0.3. Adaptive optimizers normalise each weight's step to about lr, so
    the same number is far more aggressive there: above 0.01, Adam-family optimizers usually
    diverge or stall at a poor loss.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    ```

    ## How to fix
    Lower the learning rate: 0.01-0.1 for SGD, 1e-4 to 1e-3 for Adam-family optimizers (3e-4 is a
    good first try), or find it with an lr range test. If a high peak is intended, reach it with
    warmup (OneCycleLR, LinearLR) rather than starting there. No automatic fix is offered: the right
    value depends on the batch size, schedule and model, so a human picks it.

    ## Options
    One threshold per optimizer family; for SGD a second one where the warning becomes an error.

    ## References
    - Bengio, "Practical recommendations for gradient-based training of deep architectures" (2012)
    - Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2015)
    - UMLAUT (Schoop et al., CHI 2021): learning-rate heuristic check
    - PyTorch docs, torch.optim
    """

    code = "NP101"
    name = "lr-too-high"
    message = "{subject} {value} is above {limit}; lower it"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "sgd-max": Option(0.1, "SGD/ASGD learning rates above this are reported"),
        "sgd-error": Option(0.3, "SGD/ASGD learning rates at or above this are errors"),
        "adaptive-max": Option(0.01, "Adam-family learning rates above this are reported"),
        "adadelta-lbfgs-max": Option(
            10.0, "Adadelta and LBFGS learning rates (default 1.0) above this are reported"
        ),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        facts = OptimizerFacts(ctx)
        for opt in facts.optimizers:
            if facts.wrapping.get(opt.call):
                continue  # OneCycleLR/CyclicLR replace this lr; LambdaLR scales it
            for setting in facts.lr_settings(opt):
                finding = self._judge(ctx, opt, setting)
                if finding is not None:
                    yield finding
        for opt, setting in facts.max_lr_settings():
            finding = self._judge(ctx, opt, setting)
            if finding is not None:
                yield finding

    def _judge(self, ctx: ScriptContext, opt: OptimizerCall, setting: Setting) -> Finding | None:
        if scaled_by_batch(ctx, setting.expr):
            return None
        value, subject, shown = setting.value, _subject(opt, setting), setting.shown(ctx)
        if opt.kind in SGD_FAMILY:
            limit, error = self.opt("sgd-max"), self.opt("sgd-error")
            if value >= error:
                return self.report(
                    ctx,
                    setting.anchor,
                    end=setting.anchor_end,
                    severity=Severity.ERROR,
                    message=(
                        f"{subject} {shown} is >= {_fmt(error)}: the loss will likely diverge to "
                        f"NaN; try {_fmt(limit)} or lower"
                    ),
                )
            advice = f"try {_fmt(limit)} or lower (0.01-0.1 is the usual range for SGD)"
        elif opt.kind in ADAPTIVE:
            limit = self.opt("adaptive-max")
            advice = f"{opt.kind} steps each weight by about lr, so try 1e-3 or 3e-4"
        elif opt.kind in SELF_SCALED:
            limit = self.opt("adadelta-lbfgs-max")
            advice = f"{opt.kind}'s lr scales an already sized step; its default is 1.0"
        else:
            return None
        if value <= limit:
            return None
        return self.report(
            ctx,
            setting.anchor,
            end=setting.anchor_end,
            message=(
                f"{subject} {shown} is above {_fmt(limit)}: training is likely to oscillate or "
                f"diverge; {advice}"
            ),
        )


@register
class LrTooLow(StaticRule):
    """
    ## What it does
    Flags a learning rate below 1e-6, exactly 0, or negative.

    The learning rate is read where it is passed to any `torch.optim` optimizer (by keyword, by
    position, or in a param group) or as the `max_lr` of OneCycleLR/CyclicLR. A learning rate of
    exactly 0 never changes a weight; a negative one is reported as an error, since torch.optim
    rejects it with `ValueError: Invalid learning rate` (and in a param group it climbs the loss).

    A 0 (or tiny) lr is left alone when the script writes `param_group["lr"]` itself (a common
    Noam/warmup pattern builds the optimizer with lr=0 as a placeholder), and a tiny one when
    LambdaLR scales it by a factor the check cannot know. Rprop's lr is only its first step size,
    clamped up to its minimum step (1e-6) after one update, so only 0 or a negative value is
    reported for it.

    ## Why is this bad?
    Updates of size 1e-7 x gradient are lost in floating-point noise next to weights of size ~0.1:
    the loss barely moves and a long run ends where it began. It is usually a typo (`1e-7` for
    `1e-4`), a unit mix-up, or a config value that never got set.

    ## Example
    ```python
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0)
    ```

    ## How to fix
    Use a learning rate in the optimizer's working range (1e-4 to 1e-3 for Adam, 0.01-0.1 for SGD).
    For fine-tuning, 1e-5 to 1e-6 is already the low end.

    ## Options
    The threshold below which a positive learning rate is reported.

    ## References
    - UMLAUT (Schoop et al., CHI 2021): learning rate below 1e-7
    - DeepDiagnosis (Wardat et al., ICSE 2022): update/weight ratio
    - PyTorch docs, torch.optim
    """

    code = "NP102"
    name = "lr-too-low"
    message = "{subject} {value} is below {limit}"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {"min-lr": Option(1e-6, "learning rates below this are reported")}

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        facts = OptimizerFacts(ctx)
        by_hand = ctx.loops.changes_lr_by_hand
        for opt in facts.optimizers:
            wrappers = facts.wrapping.get(opt.call, set())
            if any(w in OVERRIDING for w in wrappers):
                continue  # the scheduler's max_lr/base_lr replaces this value
            for setting in facts.lr_settings(opt):
                if setting.value > 0 and (by_hand or wrappers):
                    continue
                if setting.value == 0 and by_hand:
                    continue
                finding = self._judge(ctx, opt, setting)
                if finding is not None:
                    yield finding
        for opt, setting in facts.max_lr_settings():
            finding = self._judge(ctx, opt, setting)
            if finding is not None:
                yield finding

    def _judge(self, ctx: ScriptContext, opt: OptimizerCall, setting: Setting) -> Finding | None:
        value, subject, shown = setting.value, _subject(opt, setting), setting.shown(ctx)
        limit = self.opt("min-lr")
        if value < 0:
            consequence = (
                "torch.optim raises 'ValueError: Invalid learning rate'"
                if not setting.where
                else "the updates climb the loss instead of descending it"
            )
            return self.report(
                ctx,
                setting.anchor,
                end=setting.anchor_end,
                severity=Severity.ERROR,
                confidence=Confidence.HIGH,
                message=f"{subject} {shown} is negative: {consequence}; use a positive value",
            )
        if opt.kind in SGD_FAMILY:
            advice = "use 0.01-0.1 for SGD"
        elif opt.kind in ADAPTIVE:
            advice = f"use 1e-4 to 1e-3 for {opt.kind}"
        elif opt.kind in SELF_SCALED:
            advice = f"{opt.kind}'s default is 1.0"
        else:
            advice = f"use a value in {opt.kind}'s working range"
        if value == 0:
            source = f" ({ctx.source(setting.expr)})" if shown != "0" else ""
            message = (
                f"{subject} is 0{source}: the optimizer never changes the weights, probably a "
                f"missing config value; {advice}"
            )
        elif value < limit and opt.kind != "Rprop":
            message = (
                f"{subject} {shown} is below {_fmt(limit)}: updates this small barely move the "
                f"weights and training will stall; {advice}"
            )
        else:
            return None
        return self.report(ctx, setting.anchor, end=setting.anchor_end, message=message)


def _lr_named(name: str | None) -> bool:
    return bool(name) and bool(_LR_NAME.search(name or ""))


def _target_name(target: ast.expr) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
        return str(target.slice.value)
    return None


def _in_loop(ctx: ScriptContext, node: ast.AST) -> bool:
    for ancestor in ctx.ancestors(node):
        if isinstance(ancestor, ast.For | ast.AsyncFor | ast.While):
            return True
        if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            return False
    return False


def decays_lr_by_hand(ctx: ScriptContext) -> bool:
    """Signs of a hand-written schedule: `lr /= 4`, `lr = lr * 0.1` in a loop, a call to
    `adjust_learning_rate(...)`/`set_lr(...)`, or a function with such a name."""
    kinds = (ast.AugAssign, ast.Assign, ast.FunctionDef, ast.AsyncFunctionDef, ast.Call)
    for node in ctx.nodes(*kinds):
        if isinstance(node, ast.AugAssign) and _lr_named(_target_name(node.target)):
            return True
        if isinstance(node, ast.Assign) and _in_loop(ctx, node):
            if any(_lr_named(_target_name(t)) for t in node.targets):
                return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _lr_named(node.name):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if _lr_named(name) or (name and _SCHEDULER_NAME.search(name)):
                return True
    return False


def has_scheduler(ctx: ScriptContext) -> bool:
    """A torch/transformers/timm scheduler, or anything named like one (SWALR, a local
    `WarmupScheduler` class, `create_scheduler(...)`)."""
    if ctx.loops.schedulers:
        return True
    return any(_SCHEDULER_NAME.search(name) for name in ctx.classes) or any(
        _SCHEDULER_NAME.search((ctx.call_name(c) or "").rsplit(".", 1)[-1]) for c in ctx.calls
    )


_RANGES = ("range", "tqdm.trange", "trange", "tqdm.auto.trange")
_WRAPPERS = ("tqdm", "tqdm.tqdm", "tqdm.auto.tqdm", "enumerate")


def _range_call(ctx: ScriptContext, expr: ast.expr) -> ast.Call | None:
    """The `range(...)` a loop iterates, also through `tqdm(range(...))` and `enumerate(...)`."""
    for _ in range(3):
        if not isinstance(expr, ast.Call):
            return None
        name = ctx.call_name(expr)
        if name in _RANGES:
            return expr
        if name in _WRAPPERS and expr.args:
            expr = expr.args[0]
        else:
            return None
    return None


def epoch_count(ctx: ScriptContext, loop: Loop) -> int | None:
    """How many times a `for` over a (possibly wrapped) range runs, when statically known."""
    if isinstance(loop, ast.While):
        return None
    call = _range_call(ctx, loop.iter)
    if call is None or ctx.has_kwargs_splat(call) or not 1 <= len(call.args) <= 3:
        return None
    bounds = [ctx.number(a) for a in call.args]
    if not all(b is not None and math.isfinite(b) and b == int(b) for b in bounds):
        return None
    return range_length([int(b) for b in bounds if b is not None])


def _iterates_batches(ctx: ScriptContext, loop: Loop) -> bool:
    """A single loop that is one pass over the data (a loader, or a strided range of batches)
    rather than a loop over epochs or steps."""
    if isinstance(loop, ast.While):
        return False
    names = [n.id for n in walk(loop.target) if isinstance(n, ast.Name)]
    if any(_BATCH_NAME.search(n) for n in names):
        return True
    call = _range_call(ctx, loop.iter)
    return call is None or len(call.args) == 3


def multi_epoch(ctx: ScriptContext, loop: TrainingLoop, min_epochs: int) -> tuple[bool, str]:
    """Whether a training loop runs for many epochs (or an unknown number), and how to say so."""
    epoch_loop = loop.epoch_loop or loop.loop
    unit = "epochs"
    if epoch_loop is loop.loop:
        if _iterates_batches(ctx, epoch_loop):
            return False, ""
        unit = "iterations"  # one loop, one step per pass: full-batch epochs or steps
    # Counted here rather than taken from loop.epochs so that a default that callers override
    # (`def fit(epochs=5)` called as `fit(epochs=50)`) counts as unknown.
    epochs = epoch_count(ctx, epoch_loop)
    if epochs is not None:
        return epochs >= min_epochs, f"for {epochs} {unit}"
    return True, f"for an unknown number of {unit}"


@register
class NoLrDecay(StaticRule):
    """
    ## What it does
    Reports a long hand-written training loop whose learning rate never decays.

    The loop steps an optimizer for many epochs (10 or more, or a count that is not statically
    known) at a constant learning rate: the script has no scheduler (torch.optim.lr_scheduler,
    including ReduceLROnPlateau, or a transformers/timm one), writes no `param_group["lr"]`, and
    has no hand-written decay (`lr /= 4`, `adjust_learning_rate(...)`).

    The finding sits on the optimizer construction (its class name), where a scheduler would be
    added. It stays silent when the training loop is handed to a framework (`trainer.fit(...)`),
    when the loop runs fewer than 10 epochs, when the only loop is one pass over a data loader,
    when the script builds no optimizer or several (GANs and multi-stage scripts keep constant
    rates on purpose), when the optimizer is rebuilt inside a loop, and for optimizers that shrink
    their own steps (Adadelta, Adagrad, LBFGS, Rprop, Adafactor).

    ## Why is this bad?
    A constant learning rate that is large enough to make progress early is too large to settle
    into a minimum later: the loss plateaus at a level set by the step size. Decaying the rate
    (by 0.1, 0.3 or 0.5 when validation loss plateaus, or at fixed epochs) usually buys a
    clear further drop in loss for free.

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(50):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    ```

    ## How to fix
    Add a scheduler after the optimizer and step it once per epoch, e.g.
    `scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.1)`, or
    `ReduceLROnPlateau(optimizer, factor=0.1)` stepped with the validation loss, or
    CosineAnnealingLR over the run.

    ## Options
    The epoch count below which a loop with a statically known count is not reported (a loop
    whose count is unknown is always reported).

    ## References
    - Bengio, "Practical recommendations for gradient-based training of deep architectures" (2012)
    - PyTorch docs, "How to adjust learning rate" (torch.optim.lr_scheduler)
    """

    code = "NP103"
    name = "no-lr-decay"
    message = "{kind} trains {epochs} at a constant learning rate"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    options = {
        "min-epochs": Option(10, "loops with a known epoch count below this are not reported")
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        loops = ctx.loops
        if loops.hands_loop_to_framework or len(loops.optimizers) != 1:
            return
        opt = loops.optimizers[0]
        if opt.kind in SELF_DECAYING or _in_loop(ctx, opt.call):
            return
        if has_scheduler(ctx) or loops.changes_lr_by_hand or decays_lr_by_hand(ctx):
            return
        for loop in loops.training_loops:
            if not loop.steps:
                continue
            many, how_long = multi_epoch(ctx, loop, self.opt("min-epochs"))
            if not many:
                continue
            epoch_line = (loop.epoch_loop or loop.loop).lineno
            yield self.report(
                ctx,
                opt.call.func,
                message=(
                    f"{opt.kind} trains {how_long} (loop at line {epoch_line}) at a constant "
                    "learning rate: nothing decays it; add a scheduler such as "
                    "StepLR(optimizer, step_size=10, gamma=0.1) or ReduceLROnPlateau"
                ),
            )
            return


@register
class WeightDecayTooLarge(StaticRule):
    """
    ## What it does
    Flags a weight decay strong enough to keep the network from fitting the data.

    The `weight_decay` is read where it is passed to a `torch.optim` optimizer (by keyword, by
    position, or in a param group). It is an error at 10 or more, and a warning above 0.1 for
    optimizers that apply it as an L2 penalty on the gradient (SGD, Adam, RMSprop, Adagrad, ...).
    AdamW and Adafactor decouple the decay from the gradient, where values up to 1 are in use, so
    for them (and for Adam/NAdam/RAdam with `decoupled_weight_decay=True`) the warning starts
    above 1.

    ## Why is this bad?
    Weight decay adds `weight_decay * w` to every gradient. When that term outweighs the data's
    gradient, every weight is pulled towards zero faster than the loss can grow it: the network
    underfits, or collapses to a constant output. L2 strengths are rarely useful above 10 even in
    the loosest sense, and typical values are 1e-5 to 1e-3 (5e-4 for ImageNet ResNets).

    ## Example
    ```python
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=10)
    ```

    ## How to fix
    Use 1e-5 to 1e-3 with SGD/Adam (1e-4 or 5e-4 are common), and 0.01-0.1 with AdamW. No automatic
    fix is offered: the right strength depends on the data and model.

    ## Options
    Separate warning thresholds for L2-style and decoupled decay, and one error threshold for all.

    ## References
    - Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019)
    - Bengio, "Practical recommendations for gradient-based training of deep architectures" (2012)
    - PyTorch docs, torch.optim
    """

    code = "NP115"
    name = "weight-decay-too-large"
    message = "weight_decay {value} on {kind} is above {limit}"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    options = {
        "max": Option(0.1, "L2-style weight decay above this is reported"),
        "decoupled-max": Option(1.0, "AdamW/Adafactor weight decay above this is reported"),
        "error": Option(10.0, "weight decay at or above this is an error"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        for opt in ctx.loops.optimizers:
            decoupled = opt.kind in DECOUPLED or (
                ctx.value(ctx.argument(opt.call, "decoupled_weight_decay")) is True
            )
            settings: list[Setting] = []
            position = WEIGHT_DECAY_POSITION.get(opt.kind)
            if position is not None:
                try:
                    expr, anchor = argument_node(opt.call, "weight_decay", position)
                except LookupError:
                    pass
                else:
                    value = ctx.number(expr)
                    if value is not None:
                        settings.append(Setting(value, expr, anchor))
            for value_expr, start, end in group_settings(ctx, opt.call, "weight_decay"):
                value = ctx.number(value_expr)
                if value is not None:
                    settings.append(Setting(value, value_expr, start, end, "param group"))
            for setting in settings:
                finding = self._judge(ctx, opt, setting, decoupled)
                if finding is not None:
                    yield finding

    def _judge(
        self, ctx: ScriptContext, opt: OptimizerCall, setting: Setting, decoupled: bool
    ) -> Finding | None:
        value, shown = setting.value, setting.shown(ctx)
        where = "param-group " if setting.where else ""
        error = self.opt("error")
        if value >= error:
            return self.report(
                ctx,
                setting.anchor,
                end=setting.anchor_end,
                severity=Severity.ERROR,
                message=(
                    f"{opt.kind} {where}weight_decay {shown} is >= {_fmt(error)}: the decay "
                    "outweighs the data and drives every weight to zero; use 1e-4 to 1e-2"
                ),
            )
        limit = self.opt("decoupled-max" if decoupled else "max")
        if value <= limit:
            return None
        if decoupled:
            advice = "decoupled decay is usually 0.01-0.1"
        else:
            advice = "an L2 penalty this strong makes the net underfit; use 1e-5 to 1e-3"
        return self.report(
            ctx,
            setting.anchor,
            end=setting.anchor_end,
            message=f"{opt.kind} {where}weight_decay {shown} is above {_fmt(limit)}: {advice}",
        )


def _parameters_owner(ctx: ScriptContext, expr: ast.expr) -> ast.expr | None:
    """`model` in `model.parameters()`, also through `list(...)` and `filter(fn, ...)`."""
    expr = ctx.resolve(expr)
    for _ in range(3):
        if not isinstance(expr, ast.Call):
            return None
        name = ctx.call_name(expr)
        if name == "list" and len(expr.args) == 1:
            expr = ctx.resolve(expr.args[0])
        elif name == "filter" and len(expr.args) == 2:
            expr = ctx.resolve(expr.args[1])
        else:
            break
    if (
        isinstance(expr, ast.Call)
        and isinstance(expr.func, ast.Attribute)
        and expr.func.attr == "parameters"
        and not expr.args
    ):
        return expr.func.value
    return None


@register
class PlainSgdDeepNet(StaticRule):
    """
    ## What it does
    Reports plain SGD (no momentum) training a deep network.

    It fires on `torch.optim.SGD` with momentum absent or 0 whose parameters come from a model the
    script defines (`model.parameters()`) with six or more weight layers (Linear, Conv,
    recurrent). It is silent when the model is not known, when momentum is not statically known,
    and for param groups.

    ## Why is this bad?
    Deep nets have long, narrow valleys and many saddle points. Plain SGD zig-zags across the
    valleys and crawls near saddle points, so training is slow or seems stuck. Momentum averages
    the steps and moves along the valley; adaptive methods such as Adam rescale each direction.
    Both usually train deep nets much faster.

    ## Example
    ```python
    model = nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
        nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    ```

    ## How to fix
    Add momentum (`momentum=0.9`, optionally `nesterov=True`), or start with Adam (lr 1e-3 or
    3e-4). With momentum 0.9 the effective step is about 10x lr, so lower lr if training becomes
    unstable. No automatic fix is offered, since momentum changes the effective step size.

    ## Options
    The number of weight layers from which a network counts as deep.

    ## References
    - Sutskever et al., "On the importance of initialization and momentum in deep learning" (2013)
    - Dauphin et al., "Identifying and attacking the saddle point problem" (2014)
    - Kingma & Ba, "Adam: A Method for Stochastic Optimization" (2015)
    """

    code = "NP116"
    name = "plain-sgd-deep-net"
    message = "plain SGD trains {model} with {layers} weight layers"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    options = {"min-layers": Option(6, "networks with fewer weight layers are not reported")}

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        for opt in ctx.loops.optimizers:
            if opt.kind != "SGD" or param_groups(ctx, opt.call) is not None:
                continue
            if ctx.has_kwargs_splat(opt.call):
                continue  # momentum may come in the **kwargs
            anchor: ast.AST = opt.call.func
            try:
                expr, anchor = argument_node(opt.call, "momentum", 2)
            except LookupError:
                pass
            else:
                if ctx.number(expr) != 0:
                    continue
            params = ctx.argument(opt.call, "params", 0)
            owner = _parameters_owner(ctx, params) if params is not None else None
            if owner is None:
                continue
            model = ctx.models.the_model(owner)
            if model is None:
                continue
            layers = len(model.weight_layers)
            if layers < self.opt("min-layers"):
                continue
            name = model.name if model.kind == "class" else ctx.source(owner) or "the network"
            yield self.report(
                ctx,
                anchor,
                message=(
                    f"plain SGD (momentum 0) trains {name} with {layers} weight layers: deep nets "
                    "crawl through narrow valleys and stall near saddle points without momentum; "
                    "use momentum=0.9 (nesterov=True) or Adam"
                ),
            )
