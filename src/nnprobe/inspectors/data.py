"""NP118 and NP119: what goes into training (input scaling) and how hyperparameters are searched.

Both are advice rather than bugs, so both are info and conservative: NP118 speaks only when it
can see where the data comes from and sees no scaling anywhere in the script; NP119 only about
searches it can count.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Iterator

from nnprobe.core.finding import Confidence, Finding, Severity
from nnprobe.core.registry import register
from nnprobe.core.rule import Option
from nnprobe.inspectors.regularization import identifier_tokens
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import ScriptContext
from nnprobe.inspectors.script.lists import range_length
from nnprobe.inspectors.script.models import NN
from nnprobe.inspectors.script.walk import children, walk
from nnprobe.inspectors.training_loop import is_model_call

# sklearn loaders whose raw features are far from zero mean / unit variance, and what they hold.
SKLEARN_SOURCES = {
    "sklearn.datasets.load_digits": "load_digits() pixel values run from 0 to 16",
    "sklearn.datasets.load_breast_cancer": (
        "load_breast_cancer() features range from about 0.001 to over 4000"
    ),
    "sklearn.datasets.load_wine": "load_wine() features range from about 0.1 to over 1600",
    "sklearn.datasets.load_iris": "load_iris() measurements are centimetres (0.1 to 7.9)",
    "sklearn.datasets.fetch_california_housing": (
        "fetch_california_housing() features range from below 1 to over 35000"
    ),
    "sklearn.datasets.load_diabetes": (
        "load_diabetes() features are centred but scaled to a standard deviation of about 0.05"
    ),
}
TABLE_SOURCES = {
    "pandas.read_csv": "pd.read_csv() columns arrive in their raw units",
    "numpy.loadtxt": "np.loadtxt() columns arrive in their raw units",
    "numpy.genfromtxt": "np.genfromtxt() columns arrive in their raw units",
}
# Per-channel statistics commonly used with torchvision's datasets.
DATASET_STATS = {
    "MNIST": "(0.1307,), (0.3081,)",
    "FashionMNIST": "(0.2860,), (0.3530,)",
    "KMNIST": "(0.1918,), (0.3483,)",
    "CIFAR10": "(0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)",
    "CIFAR100": "(0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)",
    "ImageFolder": "(0.485, 0.456, 0.406), (0.229, 0.224, 0.225)",
    "ImageNet": "(0.485, 0.456, 0.406), (0.229, 0.224, 0.225)",
}
_TO_TENSOR = ("ToTensor", "PILToTensor", "ToDtype", "ConvertImageDtype", "ToImage")
_SCALING_CALLS = frozenset(
    {
        "torch.nn.functional.normalize",
        "torch.nn.functional.layer_norm",
        "torch.nn.functional.batch_norm",
        "torch.nn.functional.instance_norm",
        "scipy.stats.zscore",
    }
)
_SCALING_WORDS = ("normaliz", "normalis", "standardiz", "standardis", "scale", "zscore", "minmax")
_SCALE_TOKENS = frozenset(
    {"std", "stdev", "sigma", "scale", "max", "maximum", "norm", "range", "ptp", "var", "amax"}
)
_CENTRE_TOKENS = frozenset({"mean", "mu", "min", "minimum", "avg", "average", "median", "amin"})
_ARITHMETIC_METHODS = frozenset({"div", "div_", "divide", "true_divide", "sub", "sub_", "subtract"})
_FIRST_NORM = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm")


def _number_at_least(ctx: ScriptContext, expr: ast.expr, bound: float) -> bool:
    value = ctx.number(expr)
    return value is not None and abs(value) >= bound


def _tokens(expr: ast.AST) -> set[str]:
    tokens: set[str] = set()
    for node in walk(expr):
        if isinstance(node, ast.Name):
            tokens.update(identifier_tokens(node.id))
        elif isinstance(node, ast.Attribute):
            tokens.update(identifier_tokens(node.attr))
    return tokens


def _scaling_operation(ctx: ScriptContext, node: ast.AST) -> bool:
    """One step that scales or centres data: `x / 16.0`, `(x - mean) / std`, `x /= 255`,
    `x.div_(255)`, `StandardScaler()`, `F.normalize(x)`, a user's `normalize(x)`."""
    if isinstance(node, ast.BinOp | ast.AugAssign):
        right = node.right if isinstance(node, ast.BinOp) else node.value
        if isinstance(node.op, ast.Div | ast.FloorDiv):
            return _number_at_least(ctx, right, 2) or bool(_tokens(right) & _SCALE_TOKENS)
        if isinstance(node.op, ast.Sub):
            return bool(_tokens(right) & _CENTRE_TOKENS)
        return False
    if not isinstance(node, ast.Call):
        return False
    name = ctx.call_name(node) or ""
    if name.startswith("sklearn.preprocessing.") or name in _SCALING_CALLS:
        return True
    last = name.rsplit(".", 1)[-1] if name else ""
    if isinstance(node.func, ast.Attribute):
        last = node.func.attr
        if last in _ARITHMETIC_METHODS:
            return True
    lowered = last.lower()
    return any(word in lowered for word in _SCALING_WORDS) and "grad" not in lowered


def _normalising_first_layer(ctx: ScriptContext) -> bool:
    for model in ctx.models.roots:
        first = next((op for op in model.ops if op.kind != "other"), None)
        if first is not None and first.kind == "norm" and first.name.startswith(NN):
            if any(part in first.name for part in _FIRST_NORM):
                return True
    return False


def _data_source(ctx: ScriptContext, call: ast.Call) -> bool:
    name = ctx.call_name(call) or ""
    return (
        name in SKLEARN_SOURCES or name in TABLE_SOURCES or name.startswith("torchvision.datasets.")
    )


def _transform_items(ctx: ScriptContext, expr: ast.expr) -> list[ast.expr] | None:
    """The transforms a `transform=` argument applies, in order; None when not statically known."""
    resolved = ctx.resolve(expr)
    if not isinstance(resolved, ast.Call):
        return None
    name = ctx.call_name(resolved) or ""
    if name.rsplit(".", 1)[-1] == "Compose":
        if len(resolved.args) != 1:
            return None
        items = ctx.resolve(resolved.args[0])
        if not isinstance(items, ast.List | ast.Tuple):
            return None
        result: list[ast.expr] = []
        for item in items.elts:
            inner = _transform_items(ctx, item)
            if inner is None:
                return None
            result.extend(inner)
        return result
    return [resolved]


@register
class InputNotNormalized(StaticRule):
    """
    ## What it does
    Reports training data that reaches the model without any scaling step.

    The data sources it knows are scikit-learn loaders whose raw features are far from zero mean
    and unit variance (`load_digits`, `load_breast_cancer`, `load_wine`, `load_iris`,
    `fetch_california_housing`, `load_diabetes`), CSV files read with `pd.read_csv` or
    `np.loadtxt`, and torchvision datasets whose `transform` converts images to tensors without
    `transforms.Normalize`. It is conservative: any scaling step anywhere in the script (a
    scikit-learn scaler, `(x - mean) / std`, `x / 255`, `F.normalize`, a normalisation layer
    first in the model) keeps it silent.

    ## Why is this bad?
    Gradient descent works best when inputs are centred with similar scales. Raw features in the
    hundreds saturate sigmoids and tanh, make the first layer's gradients dominated by the largest
    feature, and force a learning rate small enough for that feature, so the others learn slowly.
    Standardising inputs is the cheapest fix for slow or unstable training.

    ## Example
    ```python
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)  # info: [NP118]
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    logits = model(torch.tensor(X, dtype=torch.float32))
    ```

    ## How to fix
    Standardise features with statistics of the training split (`StandardScaler().fit(X_train)`,
    or `(X - X_train.mean(0)) / X_train.std(0)`), scale pixels to a fixed range (`X / 16.0`), or
    add `transforms.Normalize(mean, std)` after `ToTensor()` in torchvision pipelines.

    ## Options
    None.

    ## References
    - LeCun, Bottou, Orr, Müller, "Efficient BackProp", 1998 (section 4.3, normalising inputs)
    - CS231n notes, "Data preprocessing"
    - torchvision documentation, `transforms.Normalize`
    """

    code = "NP118"
    name = "input-not-normalized"
    message = "input data reaches the model without normalization"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        if not any(_data_source(ctx, call) for call in ctx.calls):
            return
        if not ctx.loops.training_loops and not any(is_model_call(ctx, c) for c in ctx.calls):
            return
        candidates = [*ctx.nodes(ast.BinOp, ast.AugAssign), *ctx.calls]
        operations = [n for n in candidates if _scaling_operation(ctx, n)]
        normalize_transforms = [
            call
            for call in ctx.calls
            if (ctx.call_name(call) or "").startswith("torchvision.transforms")
            and (ctx.call_name(call) or "").endswith(".Normalize")
        ]
        others = [n for n in operations if n not in normalize_transforms]
        if others or _normalising_first_layer(ctx):
            return
        if not normalize_transforms:
            yield from self._tabular(ctx)
        yield from self._torchvision(ctx, normalize_transforms)

    def _tabular(self, ctx: ScriptContext) -> Iterator[Finding]:
        for call in ctx.calls:
            name = ctx.call_name(call) or ""
            if name in SKLEARN_SOURCES:
                described = SKLEARN_SOURCES[name]
                confidence = Confidence.MEDIUM
            elif name in TABLE_SOURCES:
                described = TABLE_SOURCES[name]
                confidence = Confidence.LOW
            else:
                continue
            yield self.report(
                ctx,
                call,
                message=(
                    f"{described}, and nothing in this script scales them before the model: "
                    "standardise the features with statistics of the training split "
                    "(sklearn StandardScaler().fit(X_train), or (X - mean) / std) so gradient "
                    "descent sees centred inputs of similar scale"
                ),
                confidence=confidence,
            )

    def _torchvision(self, ctx: ScriptContext, normalizers: list[ast.Call]) -> Iterator[Finding]:
        reported: set[str] = set()  # one finding per pipeline, however often it is written
        for call in ctx.calls:
            name = ctx.call_name(call) or ""
            if not name.startswith("torchvision.datasets.") or name.endswith(".FakeData"):
                continue
            transform = ctx.argument(call, "transform")
            if transform is None:
                continue
            items = _transform_items(ctx, transform)
            if not items:
                continue
            qualnames = [
                (ctx.call_name(item) if isinstance(item, ast.Call) else "") or "" for item in items
            ]
            names = [n.rsplit(".", 1) for n in qualnames]
            known = all(
                len(parts) == 2 and parts[0].startswith("torchvision.transforms") for parts in names
            )
            kinds = [parts[-1] for parts in names]
            if not known or "Normalize" in kinds or "Lambda" in kinds:
                continue
            converter = next((k for k in reversed(kinds) if k in _TO_TENSOR), None)
            if converter is None:
                continue
            node = ctx.resolve(transform)
            if ast.dump(node) in reported:
                continue
            reported.add(ast.dump(node))
            if converter in ("PILToTensor", "ToImage"):
                pixels = "integer pixels 0-255"
            else:
                pixels = "pixels in [0, 1], not centred"
            dataset = name.rsplit(".", 1)[-1]
            stats = DATASET_STATS.get(dataset)
            suggestion = (
                f"transforms.Normalize({stats})" if stats else "transforms.Normalize(mean, std)"
            )
            elsewhere = ""
            if normalizers:
                elsewhere = (
                    f" (the pipeline on line {normalizers[0].lineno} does normalize: a model fed "
                    "by both sees differently scaled inputs)"
                )
            yield self.report(
                ctx,
                node,
                message=(
                    f"{dataset} images go through {converter}() ({pixels}) with no Normalize "
                    f"before the model{elsewhere}; add {suggestion} after {converter}() (the "
                    "training set's per-channel mean and std)"
                ),
            )


_HYPERPARAMETER_TOKENS = frozenset(
    {
        "lr",
        "learning",
        "rate",
        "batch",
        "bs",
        "dropout",
        "drop",
        "decay",
        "wd",
        "hidden",
        "units",
        "width",
        "depth",
        "layers",
        "momentum",
        "epochs",
        "optimizer",
        "optim",
        "activation",
        "act",
        "kernel",
        "channels",
        "filters",
        "alpha",
        "beta",
        "gamma",
        "lambda",
        "lam",
        "reg",
        "l2",
        "heads",
        "dim",
        "embed",
        "embedding",
        "warmup",
        "clip",
        "neurons",
        "nodes",
    }
)
_SEQUENCE_CALLS = frozenset(
    {
        "range",
        "numpy.logspace",
        "numpy.linspace",
        "numpy.geomspace",
        "numpy.arange",
        "torch.logspace",
        "torch.linspace",
        "torch.arange",
    }
)
_GRID_CALLS = {
    "sklearn.model_selection.GridSearchCV": ("param_grid", 1),
    "sklearn.model_selection.ParameterGrid": ("param_grid", 0),
    "optuna.samplers.GridSampler": ("search_space", 0),
}


def _hyperparameter_name(name: str) -> bool:
    for token in identifier_tokens(name):
        if token in _HYPERPARAMETER_TOKENS:
            return True
        for suffix in ("es", "s"):
            if token.endswith(suffix) and token[: -len(suffix)] in _HYPERPARAMETER_TOKENS:
                return True
    return False


def _target_names(target: ast.expr) -> list[str]:
    return [n.id for n in walk(target) if isinstance(n, ast.Name)]


def _values_count(ctx: ScriptContext, expr: ast.expr) -> int | None:
    """How many values a finite hyperparameter collection holds (None when it is not one)."""
    if isinstance(expr, ast.Call) and ctx.call_name(expr) == "enumerate" and expr.args:
        expr = expr.args[0]
    resolved = ctx.resolve(expr)
    if isinstance(resolved, ast.List | ast.Tuple | ast.Set):
        if any(isinstance(e, ast.Starred) for e in resolved.elts):
            return None
        return len(resolved.elts)
    if isinstance(resolved, ast.Call) and ctx.call_name(resolved) in _SEQUENCE_CALLS:
        name = ctx.call_name(resolved)
        if name == "range":
            length = range_length([ctx.value(a) for a in resolved.args])
            return length if length is not None else 0
        count = ctx.number(ctx.argument(resolved, "num", 2)) if "space" in (name or "") else None
        return int(count) if count is not None and math.isfinite(count) else 0
    return None


def _dimension(ctx: ScriptContext, loop: ast.For) -> tuple[str, int] | None:
    """(name, number of values) when a for loop walks a hyperparameter's candidate values."""
    count = _values_count(ctx, loop.iter)
    if count is None or count == 1:
        return None
    for name in reversed(_target_names(loop.target)):
        if _hyperparameter_name(name):
            return name, count
    iterable = loop.iter
    if isinstance(iterable, ast.Call) and ctx.call_name(iterable) == "enumerate":
        iterable = iterable.args[0]
    if isinstance(iterable, ast.Name | ast.Attribute) and _hyperparameter_name(
        ctx.source(iterable)
    ):
        return ctx.source(iterable), count
    return None


def _advice(what: str, names: list[str], counts: list[int]) -> str:
    searched = f"{what} over {len(names)} hyperparameters ({', '.join(names)}"
    if counts and all(c > 0 for c in counts):
        runs = math.prod(counts)
        searched += f": {' x '.join(str(c) for c in counts)} = {runs} runs)"
        contrast = (
            f"each hyperparameter gets at most {max(counts)} distinct values, while random search "
            f"over the same {runs} runs tries {runs} values of each"
        )
    else:
        searched += ")"
        contrast = (
            "each hyperparameter gets only a few distinct values, while random search over the "
            "same number of runs tries a new value of each in every run"
        )
    return (
        f"{searched}; in a grid {contrast}, which matters because usually one of them (often the "
        "learning rate) dominates: sample configurations instead (sklearn "
        "RandomizedSearchCV/ParameterSampler), or let Bayesian optimisation (Optuna) choose them"
    )


@register
class ExhaustiveGridSearch(StaticRule):
    """
    ## What it does
    Finds exhaustive grid searches over three or more hyperparameters.

    It recognises nested `for` loops over candidate values (`for lr in [...]: for batch_size in
    [...]: for dropout in [...]:`), `itertools.product` over the candidate lists,
    `GridSearchCV`, `ParameterGrid` and Optuna's `GridSampler` with three or more searched keys,
    and Ray Tune configs with three or more `tune.grid_search` entries.

    ## Why is this bad?
    A grid spends most of its runs re-testing the same few values of each hyperparameter: with
    3 x 3 x 3 = 27 runs, the learning rate, usually the one that matters most, is only ever tried
    at 3 values. Random search over the same budget tries 27 distinct values of every
    hyperparameter and finds better settings in fewer runs (Bergstra and Bengio, 2012); Bayesian
    optimisation, which learns from earlier runs where to look next, is cheaper still.

    ## Example
    ```python
    for lr in [1e-4, 1e-3, 1e-2]:  # info: [NP119]
        for batch_size in [32, 64, 128]:
            for dropout in [0.1, 0.3, 0.5]:
                train(lr, batch_size, dropout)
    ```

    ## How to fix
    Sample configurations at random (log-uniform for the learning rate and weight decay):
    scikit-learn's `RandomizedSearchCV` or `ParameterSampler`, or Optuna's default TPE sampler,
    with the same number of trials.

    ## Options
    `min-parameters` is the number of searched hyperparameters from which a grid is reported.

    ## References
    - Bergstra and Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 2012
    - scikit-learn documentation, "Tuning the hyper-parameters of an estimator"
    - Optuna documentation, samplers
    """

    code = "NP119"
    name = "exhaustive-grid-search"
    message = "grid search over {count} hyperparameters"
    severity = Severity.INFO
    confidence = Confidence.MEDIUM
    options = {
        "min-parameters": Option(3, "number of searched hyperparameters from which NP119 fires"),
    }

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        minimum = int(self.opt("min-parameters"))
        yield from self._nested_loops(ctx, minimum)
        yield from self._products(ctx, minimum)
        yield from self._grid_objects(ctx, minimum)

    def _nested_loops(self, ctx: ScriptContext, minimum: int) -> Iterator[Finding]:
        dimensions: dict[ast.For, tuple[str, int]] = {}
        for node in ctx.nodes(ast.For):
            assert isinstance(node, ast.For)
            found = _dimension(ctx, node)
            if found is not None:
                dimensions[node] = found
        for loop in sorted(dimensions, key=lambda n: (n.lineno, n.col_offset)):
            if any(a in dimensions for a in ctx.ancestors(loop)):
                continue  # reported with the outermost loop of its nest
            chain = self._deepest_chain(ctx, loop, dimensions)
            if len(chain) < minimum:
                continue
            names = [dimensions[n][0] for n in chain]
            counts = [dimensions[n][1] for n in chain]
            yield self.report(
                ctx,
                loop,
                end=loop.iter,
                message=_advice("nested loops search a grid", names, counts),
                count=len(chain),
            )

    def _deepest_chain(
        self, ctx: ScriptContext, loop: ast.For, dimensions: dict[ast.For, tuple[str, int]]
    ) -> list[ast.For]:
        best: list[ast.For] = []
        stack: list[ast.AST] = list(loop.body)
        while stack:
            node = stack.pop()
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if isinstance(node, ast.For) and node in dimensions:
                chain = self._deepest_chain(ctx, node, dimensions)
                if len(chain) > len(best):
                    best = chain
                continue
            stack.extend(children(node))
        return [loop, *best]

    def _products(self, ctx: ScriptContext, minimum: int) -> Iterator[Finding]:
        for call, _ in ctx.calls_to("itertools.product"):
            names: list[str] = []
            counts: list[int] = []
            if len(call.args) == 1 and isinstance(call.args[0], ast.Starred):
                grid = self._splatted_grid(ctx, call.args[0].value)
                if grid is None:
                    continue
                for key, values in grid:
                    names.append(key)
                    counts.append(_values_count(ctx, values) or 0)
                hyper = [n for n in names if _hyperparameter_name(n)]
            else:
                if any(isinstance(a, ast.Starred) for a in call.args) or call.keywords:
                    continue
                targets = self._product_targets(ctx, call, len(call.args))
                hyper = []
                for index, arg in enumerate(call.args):
                    label = targets[index] if targets else None
                    if label is None or not _hyperparameter_name(label):
                        label = ctx.source(arg)
                    names.append(label)
                    counts.append(_values_count(ctx, arg) or 0)
                    if _hyperparameter_name(label):
                        hyper.append(label)
            if len(names) < minimum or len(hyper) < min(2, len(names)):
                continue
            yield self.report(
                ctx,
                call,
                message=_advice("itertools.product searches a grid", names, counts),
                count=len(names),
            )

    def _product_targets(self, ctx: ScriptContext, call: ast.Call, size: int) -> list[str] | None:
        parent = ctx.parent(call)
        if isinstance(parent, ast.For | ast.comprehension) and parent.iter is call:
            target = parent.target
            if isinstance(target, ast.Tuple) and len(target.elts) == size:
                return [e.id if isinstance(e, ast.Name) else "" for e in target.elts]
        return None

    def _splatted_grid(
        self, ctx: ScriptContext, expr: ast.expr
    ) -> list[tuple[str, ast.expr]] | None:
        """`product(*grid.values())` with `grid` a dict literal: its (key, values) pairs."""
        if not (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr == "values"
        ):
            return None
        return _dict_entries(ctx, expr.func.value)

    def _grid_objects(self, ctx: ScriptContext, minimum: int) -> Iterator[Finding]:
        for call, name in ctx.calls_to(*_GRID_CALLS):
            keyword, position = _GRID_CALLS[name]
            grid = ctx.argument(call, keyword, position)
            if grid is None:
                continue
            resolved = ctx.resolve(grid)
            candidates = resolved.elts if isinstance(resolved, ast.List) else [resolved]
            best: list[tuple[str, ast.expr]] = []
            for candidate in candidates:
                entries = _dict_entries(ctx, candidate)
                if entries is None:
                    continue
                searched = [(k, v) for k, v in entries if _values_count(ctx, v) != 1]
                if len(searched) > len(best):
                    best = searched
            if len(best) < minimum:
                continue
            names = [key for key, _ in best]
            counts = [_values_count(ctx, values) or 0 for _, values in best]
            short = name.rsplit(".", 1)[-1]
            yield self.report(
                ctx,
                call,
                message=_advice(f"{short} searches a grid", names, counts),
                count=len(names),
            )
        yield from self._tune_grids(ctx, minimum)

    def _tune_grids(self, ctx: ScriptContext, minimum: int) -> Iterator[Finding]:
        dicts: list[ast.Dict] = []
        for call, _ in ctx.calls_to("ray.tune.grid_search"):
            parent = ctx.parent(call)
            if isinstance(parent, ast.Dict) and parent not in dicts:
                dicts.append(parent)
        for node in dicts:
            names: list[str] = []
            counts: list[int] = []
            for key, value in zip(node.keys, node.values, strict=True):
                if (
                    isinstance(key, ast.Constant)
                    and isinstance(value, ast.Call)
                    and ctx.call_name(value) == "ray.tune.grid_search"
                    and value.args
                ):
                    names.append(str(key.value))
                    counts.append(_values_count(ctx, value.args[0]) or 0)
            if len(names) >= minimum:
                yield self.report(
                    ctx,
                    node,
                    message=_advice("tune.grid_search searches a grid", names, counts),
                    count=len(names),
                )


def _dict_entries(ctx: ScriptContext, expr: ast.expr) -> list[tuple[str, ast.expr]] | None:
    resolved = ctx.resolve(expr)
    if isinstance(resolved, ast.Dict):
        entries = []
        for key, value in zip(resolved.keys, resolved.values, strict=True):
            if not isinstance(key, ast.Constant):
                return None
            entries.append((str(key.value), value))
        return entries
    if isinstance(resolved, ast.Call) and ctx.call_name(resolved) == "dict" and not resolved.args:
        if any(kw.arg is None for kw in resolved.keywords):
            return None
        return [(str(kw.arg), kw.value) for kw in resolved.keywords]
    return None
