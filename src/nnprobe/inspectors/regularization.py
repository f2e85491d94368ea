"""NP113 and NP114: how a script guards against over-fitting, and dropout rates that defeat it.

Regularisation is judged on the whole script (any weight decay, dropout, augmentation or early
stopping anywhere counts), because a rule that cannot see all of it must not claim it is absent.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterable, Iterator

from nnprobe.core.finding import Confidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import ScriptContext
from nnprobe.inspectors.script.loops import Loop, TrainingLoop
from nnprobe.inspectors.script.models import DROPOUT_LAYERS, NN
from nnprobe.inspectors.script.walk import children

# Functional dropout: the probability is the second positional argument, 0.5 when omitted.
DROPOUT_FUNCTIONS = frozenset(
    {
        "torch.nn.functional.dropout",
        "torch.nn.functional.dropout1d",
        "torch.nn.functional.dropout2d",
        "torch.nn.functional.dropout3d",
        "torch.nn.functional.alpha_dropout",
        "torch.nn.functional.feature_alpha_dropout",
        "torch.dropout",
        "torch.alpha_dropout",
        "torch.feature_dropout",
        "torch.feature_alpha_dropout",
    }
)
# Modules whose `dropout=` keyword is a dropout probability.
DROPOUT_KEYWORD_MODULES = frozenset(
    NN + n
    for n in (
        "RNN",
        "LSTM",
        "GRU",
        "Transformer",
        "TransformerEncoderLayer",
        "TransformerDecoderLayer",
        "MultiheadAttention",
    )
)
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_SEPARATORS = re.compile(r"[_\W\d]+")
_DEFAULT_WEIGHT_DECAY = {"torch.optim.AdamW": 0.01}


@functools.lru_cache(maxsize=8192)
def identifier_tokens(name: str) -> tuple[str, ...]:
    """`X_val` -> ("x", "val"), `valLoader` -> ("val", "loader"), `lr2` -> ("lr",)."""
    spaced = _CAMEL.sub(r"\1_\2", name)
    return tuple(t for t in _SEPARATORS.split(spaced.lower()) if t)


def script_names(ctx: ScriptContext) -> set[str]:
    """Every identifier the script names (variables, attributes, functions, parameters, imports,
    string keys of dicts and subscripts); docstrings and other strings are left out."""
    names: set[str] = set(ctx.imports)
    kinds = (
        ast.Name,
        ast.Attribute,
        ast.FunctionDef,
        ast.AsyncFunctionDef,
        ast.ClassDef,
        ast.arg,
        ast.Dict,
        ast.Subscript,
    )
    for node in ctx.nodes(*kinds, ordered=False):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.Dict):
            for key in node.keys:
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    names.add(key.value)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if isinstance(node.slice.value, str):
                names.add(node.slice.value)
    for value in ctx.imports.values():
        names.update(value.split("."))
    return names


def script_tokens(ctx: ScriptContext, names: set[str] | None = None) -> set[str]:
    """Tokens of every identifier the script names (see script_names)."""
    tokens: set[str] = set()
    for name in script_names(ctx) if names is None else names:
        tokens.update(identifier_tokens(name))
        tokens.add(name.lower())
    return tokens


def dropout_arguments(ctx: ScriptContext) -> Iterator[tuple[ast.Call, ast.AST, ast.expr]]:
    """(call, node to report, probability expression) for every dropout probability written."""
    for call in ctx.calls:
        name = ctx.call_name(call) or ""
        if name in DROPOUT_LAYERS:
            index = 0
        elif name in DROPOUT_FUNCTIONS:
            index = 1
        elif name in DROPOUT_KEYWORD_MODULES:
            for kw in call.keywords:
                if kw.arg == "dropout":
                    yield call, kw, kw.value
            continue
        else:
            continue
        for kw in call.keywords:
            if kw.arg == "p":
                yield call, kw, kw.value
                break
        else:
            expr = ctx.argument(call, "p", index)
            if expr is not None:
                yield call, expr, expr


@register
class DropoutRate(StaticRule):
    """
    ## What it does
    Checks dropout probabilities: above 0.5 is a warning, 0.9 and more (or outside [0, 1)) an
    error.

    It reads `nn.Dropout(p)` and its 1d/2d/3d/alpha variants, `F.dropout(x, p=...)`, and the
    `dropout=` argument of `nn.LSTM`, `nn.GRU`, `nn.RNN`, `nn.Transformer*` and
    `nn.MultiheadAttention`. Values from constants, argparse defaults and
    configs are followed; values that cannot be known statically are left alone.

    ## Why is this bad?
    In PyTorch `p` is the probability of *dropping* a unit. The usual first choice is 0.5 for
    hidden layers (less for inputs and conv layers); above that the network sees so little of each
    example that it under-fits. Values of 0.9 and more usually come from reading `p` as the
    probability of *keeping* a unit (`keep_prob` in TensorFlow 1): `nn.Dropout(0.9)` keeps only
    one unit in ten. `p=1` zeroes the layer's whole output, and values outside [0, 1] raise.

    ## Example
    ```python
    model = nn.Sequential(
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Dropout(0.9),  # error: [NP114]
        nn.Linear(256, 10),
    )
    ```

    ## How to fix
    Use `p=0.5` or lower (0.1-0.3 for inputs, conv layers and attention). If the value was meant as
    a keep probability, use `1 - keep_prob`. Raise dropout only when the validation loss shows
    over-fitting.

    ## Options
    `warn-above` is the probability above which a warning is given; `error-at` the one from which
    it is an error.

    ## References
    - Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting", 2014
    - PyTorch documentation, `torch.nn.Dropout`
    - UMLAUT (Schoop et al., 2021): dropout rate above 0.5 heuristic
    """

    code = "NP114"
    name = "dropout-rate"
    message = "dropout p={p} drops {percent}% of the units"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    options = {
        "warn-above": Option(0.5, "dropout probability above which NP114 warns"),
        "error-at": Option(0.9, "dropout probability from which NP114 is an error"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        warn_above = float(self.opt("warn-above"))
        error_at = float(self.opt("error-at"))
        for call, node, expr in dropout_arguments(ctx):
            p = ctx.number(expr)
            if p is None:
                continue
            label = node.arg if isinstance(node, ast.keyword) and node.arg else "p"
            seen = f"{ctx.source(call.func) or 'dropout'}({label}={_format(p)})"
            if p < 0 or p > 1:
                message = (
                    f"{seen} is outside [0, 1] and PyTorch raises ValueError; p is the "
                    "probability of DROPPING a unit: use 0.5 or lower"
                )
                severity = Severity.ERROR
            elif p == 1:
                message = (
                    f"{seen} drops every unit: the layer outputs only zeros and nothing before "
                    "it can learn; p is the probability of DROPPING a unit: use 0.5 or lower"
                )
                severity = Severity.ERROR
            elif p >= error_at:
                message = (
                    f"{seen} drops {_percent(p)}% of the units: in PyTorch p is the probability "
                    "of DROPPING a unit, not keep_prob as in TensorFlow 1; if you meant to keep "
                    f"{_percent(p)}%, use {label}={_format(round(1 - p, 6))}"
                )
                severity = Severity.ERROR
            elif p > warn_above:
                message = (
                    f"{seen} drops {_percent(p)}% of the units, more than the usual "
                    f"{_format(warn_above)}: the network will likely under-fit; start at 0.5 or "
                    "lower (0.1-0.3 for inputs and conv layers) and raise it only if the "
                    "validation loss shows over-fitting"
                )
                severity = Severity.WARNING
            else:
                continue
            yield self.report(
                ctx, node, message=message, severity=severity, p=_format(p), percent=_percent(p)
            )


def _format(value: float) -> str:
    return f"{value:g}"


def _percent(p: float) -> str:
    return f"{p * 100:.0f}"


_VALIDATION_TOKENS = frozenset({"val", "valid", "validation", "dev", "holdout", "test"})
# What a held-out split is called with: `val_loader`, `X_test`, `valid_loss`, `test_acc`. A bare
# `valid` is not enough (GANs call their real-label tensor that).
_SPLIT_DATA_TOKENS = frozenset(
    {
        "loader",
        "dl",
        "data",
        "dataset",
        "ds",
        "set",
        "split",
        "loss",
        "losses",
        "acc",
        "accuracy",
        "x",
        "y",
        "images",
        "imgs",
        "labels",
        "inputs",
        "targets",
        "features",
        "batches",
        "metric",
        "metrics",
        "score",
        "scores",
        "mse",
        "mae",
        "error",
        "preds",
        "predictions",
        "mask",
        "idx",
        "indices",
        "logits",
        "df",
        "samples",
        "examples",
        "size",
        "frac",
        "ratio",
    }
)
_SPLIT_CALLS = frozenset(
    {
        "sklearn.model_selection.train_test_split",
        "torch.utils.data.random_split",
        "sklearn.model_selection.KFold",
        "sklearn.model_selection.StratifiedKFold",
    }
)
_EARLY_STOP_TOKENS = frozenset({"patience", "early", "earlystopping", "stopping", "best", "stop"})
_DECAY_TOKENS = frozenset(
    {"decay", "l1", "l2", "penalty", "reg", "regularization", "regularisation", "regularizer"}
)
_DROPOUT_TOKENS = frozenset({"dropout", "drop"})
_AUGMENT_TOKENS = frozenset(
    {"augment", "augmentation", "augmentations", "mixup", "cutmix", "jitter", "randaugment"}
)


@register
class NoRegularization(StaticRule):
    """
    ## What it does
    Reports a long training run with a validation split in a script that uses no regularisation
    at all. Off by default.

    A run is long from 20 epochs (`range(N)` with N known, or up to N for
    `range(start_epoch, N)`). A validation split is a `val_loader`, an `X_test`, a call to
    `train_test_split` or `random_split`, or a torchvision dataset with `train=False`.
    Regularisation is weight decay, dropout, data augmentation, label smoothing or early
    stopping: anything that looks like one of them anywhere in the script keeps the rule silent,
    and so does a script with several optimizers (GANs, actor-critic), which is not a plain
    supervised fit. It is off by default because small models on plenty of data may need no
    regularisation at all.

    ## Why is this bad?
    Long training without regularisation is how a network memorises its training set: training
    loss keeps falling while validation loss turns up. The seed's advice is to add regularisation
    once the model fits the training data: L2 weight decay, dropout, augmentation, and early
    stopping on the validation loss (keep the best checkpoint).

    ## Example
    ```python
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(100):  # info: [NP113]
        for xb, yb in train_loader:
            optimizer.zero_grad()
            loss_fn(model(xb), yb).backward()
            optimizer.step()
        val_loss = evaluate(model, val_loader)
    ```

    ## How to fix
    Watch the validation loss; if it rises while the training loss falls, add
    `weight_decay=1e-4` (or use AdamW), `nn.Dropout(0.5)` between hidden layers, augmentation for
    images, and stop when the validation loss has not improved for a few epochs.

    ## Options
    `min-epochs` is the number of epochs from which a loop counts as long.

    ## References
    - Goodfellow, Bengio, Courville, "Deep Learning", chapter 7 (Regularization)
    - Prechelt, "Early Stopping - But When?", 1998
    """

    code = "NP113"
    name = "no-regularization"
    message = "{epochs} epochs with a validation split but no regularization"
    severity = Severity.INFO
    confidence = Confidence.LOW
    enabled_by_default = False
    options = {
        "min-epochs": Option(20, "epoch count from which an unregularised training loop counts"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        loops = ctx.loops
        if loops.hands_loop_to_framework or len(loops.optimizers) != 1:
            return  # none seen, or several (GANs, actor-critic): not a plain supervised fit
        min_epochs = int(self.opt("min-epochs"))
        long_loops: dict[Loop, str] = {}
        for entry in loops.training_loops:
            epochs = _epoch_count(ctx, entry)
            if entry.epoch_loop is not None and epochs is not None and epochs[0] >= min_epochs:
                long_loops.setdefault(entry.epoch_loop, epochs[1])
        if not long_loops:
            return
        names = script_names(ctx)
        tokens = script_tokens(ctx, names)
        if not self._has_validation(ctx, names) or self._regularised(ctx, tokens):
            return
        for epoch_loop, epochs_text in long_loops.items():
            if _stops_early(epoch_loop):
                continue
            optimizers = ", ".join(sorted({o.kind for o in loops.optimizers}))
            header_end = epoch_loop.test if isinstance(epoch_loop, ast.While) else epoch_loop.iter
            yield self.report(
                ctx,
                epoch_loop,
                end=header_end,
                message=(
                    f"training runs {epochs_text} epochs with a validation split but without "
                    f"any regularization: no weight_decay ({optimizers}), no dropout, no "
                    "augmentation, no early stopping; if validation loss rises while training "
                    "loss falls, add weight_decay (e.g. 1e-4), dropout (0.5 is the usual first "
                    "choice) or early stopping on the validation loss"
                ),
                epochs=epochs_text,
            )

    def _has_validation(self, ctx: ScriptContext, names: set[str]) -> bool:
        for name in names:
            if name.lower() in _VALIDATION_TOKENS | {"validate", "evaluate"}:
                if name.lower() != "valid":
                    return True
            tokens = set(identifier_tokens(name))
            if tokens & _VALIDATION_TOKENS and tokens & _SPLIT_DATA_TOKENS:
                return True
        if any(True for _ in ctx.calls_to(*_SPLIT_CALLS)):
            return True
        for call in ctx.calls:
            if (ctx.call_name(call) or "").startswith("torchvision.datasets."):
                train = ctx.argument(call, "train", 1)
                split = ctx.value(ctx.argument(call, "split"))
                if (train is not None and ctx.value(train) is False) or split in ("val", "test"):
                    return True
        return False

    def _regularised(self, ctx: ScriptContext, tokens: set[str]) -> bool:
        if tokens & (_EARLY_STOP_TOKENS | _DECAY_TOKENS | _DROPOUT_TOKENS | _AUGMENT_TOKENS):
            return True
        for optimizer in ctx.loops.optimizers:
            if ctx.has_kwargs_splat(optimizer.call):
                return True
            decay = ctx.argument(optimizer.call, "weight_decay")
            if decay is None:
                if _DEFAULT_WEIGHT_DECAY.get(optimizer.qualname):
                    return True
                if any(isinstance(a, ast.List | ast.Dict) for a in optimizer.call.args[:1]):
                    return True  # parameter groups may carry their own weight_decay
                continue
            if ctx.number(decay) != 0:
                return True  # a non-zero or unknown weight decay
        for _call, _node, expr in dropout_arguments(ctx):
            if ctx.number(expr) != 0:
                return True
        for call in ctx.calls:
            name = ctx.call_name(call) or ""
            if name in DROPOUT_LAYERS or name in DROPOUT_FUNCTIONS:
                return True
            last = name.rsplit(".", 1)[-1]
            if name.startswith("torchvision.transforms") and (
                last.startswith("Random") or last.endswith("Augment") or last == "ColorJitter"
            ):
                return True
            smoothing = ctx.argument(call, "label_smoothing")
            if smoothing is not None and ctx.number(smoothing) != 0:
                return True
        return False


def _epoch_count(ctx: ScriptContext, entry: TrainingLoop) -> tuple[int, str] | None:
    """The epoch count and how to say it: exact when known, else the upper bound of
    `range(start_epoch, EPOCHS)` (a resumable run goes up to it)."""
    if entry.epochs is not None:
        return entry.epochs, str(entry.epochs)
    loop = entry.epoch_loop
    if isinstance(loop, ast.For) and isinstance(loop.iter, ast.Call):
        it = loop.iter
        if ctx.call_name(it) == "range" and len(it.args) == 2 and not it.keywords:
            stop = ctx.value(it.args[1])
            if isinstance(stop, int) and not isinstance(stop, bool):
                return stop, f"up to {stop}"
    return None


def _stops_early(epoch_loop: Loop) -> bool:
    """A `break` or `return` that leaves the epoch loop (a `break` of an inner loop does not)."""
    stack: list[tuple[ast.AST, bool]] = [(node, True) for node in epoch_loop.body]
    while stack:
        node, own = stack.pop()
        if isinstance(node, ast.Return) or (own and isinstance(node, ast.Break)):
            return True
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        inner = own and not isinstance(node, ast.For | ast.AsyncFor | ast.While)
        stack.extend((child, inner) for child in children(node))
    return False
