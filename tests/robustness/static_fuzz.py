"""Inputs for fuzzing the static analyzer, and the harness that runs one and tallies the outcome.

Shared by tests/robustness/test_fuzz_static.py (a fixed, derandomized budget in CI) and
bench/fuzz_static.py (a large budget that prints the figures). Three kinds of source:

- generated: training-script-like modules built as ASTs from the constructs the NP1xx rules read
  (optimizers and their lr, nn.Sequential and nn.Module classes, losses, init calls, training and
  validation loops with or without zero_grad, torch.load, argparse defaults, config dicts, grid
  searches), with hostile values in every slot (NaN, huge powers, strings, starred arguments);
- python-ish text: tokens of Python and of training scripts strung together at random;
- mutated: a fixture, an example or a generated script edited as if typed: characters inserted or
  deleted, truncated mid-token, lines duplicated, brackets unbalanced, random unicode, tabs mixed
  with spaces; some as bytes (invalid UTF-8, NUL, coding cookies) through the on-disk path.

The property: nothing raises, and no rule is isolated as NP907 (an NP907 is a rule bug to fix).
"""

from __future__ import annotations

import ast
import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from nnprobe.core.config import Config, ConfigError, load_config, parse_config
from nnprobe.core.files import Target
from nnprobe.core.finding import Evidence, Finding
from nnprobe.core.registry import all_rules
from nnprobe.inspectors.script import handler

ROOT = Path(__file__).resolve().parents[2]
SEED_DIRS = (ROOT / "tests" / "fixtures" / "static", ROOT / "examples")
REGRESSIONS = Path(__file__).resolve().parent / "regressions"


def seed_sources() -> list[str]:
    """Every fixture and example script, plus the regression inputs the fuzzer once shrank."""
    paths = sorted(p for d in (*SEED_DIRS, REGRESSIONS) for p in d.rglob("*.py"))
    return [p.read_text(encoding="utf-8") for p in paths]


# ----------------------------------------------------------------------------- AST building


def dotted(name: str) -> ast.expr:
    parts = name.split(".")
    node: ast.expr = ast.Name(parts[0], ast.Load())
    for part in parts[1:]:
        node = ast.Attribute(node, part, ast.Load())
    return node


def call(func: str | ast.expr, args: list[ast.expr] | None = None, **kwargs: ast.expr) -> ast.Call:
    """`func(*args, **kwargs)`; the keyword `_` stands for `**value`."""
    target = dotted(func) if isinstance(func, str) else func
    keywords = [ast.keyword(None if k == "_" else k, v) for k, v in kwargs.items()]
    return ast.Call(target, list(args or []), keywords)


def assign(target: str, value: ast.expr) -> ast.stmt:
    node: ast.expr = dotted(target)
    node.ctx = ast.Store()  # type: ignore[attr-defined]
    return ast.Assign([node], value)


def expr_stmt(value: ast.expr) -> ast.stmt:
    return ast.Expr(value)


def function(name: str, params: list[str], body: list[ast.stmt]) -> ast.stmt:
    args = ast.arguments(
        posonlyargs=[],
        args=[ast.arg(p) for p in params],
        kwonlyargs=[],
        kw_defaults=[],
        defaults=[],
    )
    return ast.FunctionDef(name=name, args=args, body=body, decorator_list=[])


_SMALL = [0.0, 1e-9, 1e-6, 1e-4, 1e-3, 0.01, 0.1, 0.3, 0.5, 0.9, 0.99, 1.0, 5.0, 10.0, -0.5]
_EXTREME = [1e308, math.nan, math.inf, -math.inf, 2**64, 10**30, 10**400, -(10**400)]
_INTS = [0, 1, 2, 3, 8, 16, 20, 64, 100, 1000, -1]
_OTHER = [None, True, False, "0.1", "", "relu", "tanh", b"x", ..., 1j]
POOL = st.sampled_from(_SMALL + _EXTREME + _INTS + _OTHER)
INTS = st.integers(-(2**70), 2**70)


def _constant(value: Any) -> ast.expr:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return call("float", [ast.Constant(str(value))])
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return ast.UnaryOp(ast.USub(), ast.Constant(-value))
    return ast.Constant(value)


NAMES = st.sampled_from(["lr", "args.lr", "config", "x", "model", "epochs", "cfg", "n", "self.lr"])


@st.composite
def values(draw: st.DrawFn, depth: int = 0) -> ast.expr:
    """A hyperparameter-ish expression: mostly numbers, sometimes anything."""
    pick = draw(st.integers(0, 9))
    if pick < 5 or (depth >= 3 and pick >= 8):
        return _constant(draw(POOL))
    if pick == 5:
        return _constant(draw(st.floats() if draw(st.booleans()) else INTS))
    if pick == 6:
        return dotted(draw(NAMES))
    if pick == 7:
        return ast.Constant(draw(st.text(max_size=4)))
    kind = draw(st.sampled_from(["binop", "subscript", "call", "get", "list", "starred", "lambda"]))
    inner = values(depth + 1)
    if kind == "binop":
        op = draw(
            st.sampled_from(
                [
                    ast.Add,
                    ast.Sub,
                    ast.Mult,
                    ast.Div,
                    ast.Pow,
                    ast.Mod,
                    ast.FloorDiv,
                    ast.BitOr,
                    ast.MatMult,
                ]
            )
        )
        return ast.BinOp(draw(inner), op(), draw(inner))
    if kind == "subscript":
        key = draw(st.sampled_from(["lr", "epochs", "weight_decay", "p", "momentum"]))
        return ast.Subscript(
            dotted(draw(st.sampled_from(["config", "cfg", "args", "params"]))),
            ast.Constant(key),
            ast.Load(),
        )
    if kind == "call":
        return call(
            draw(st.sampled_from(["float", "int", "max", "min", "get_lr", "math.sqrt", "abs"])),
            [draw(inner), draw(inner)][: draw(st.integers(0, 2))],
        )
    if kind == "get":
        return call(
            dotted("config.get"),
            [ast.Constant(draw(st.sampled_from(["lr", "epochs", "p"]))), draw(inner)],
        )
    if kind == "list":
        return ast.List([draw(inner) for _ in range(draw(st.integers(0, 3)))], ast.Load())
    if kind == "starred":
        return ast.Starred(draw(inner), ast.Load())
    no_args = ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[])
    return ast.Lambda(no_args, draw(inner))


@st.composite
def keywords(draw: st.DrawFn, names: list[str]) -> dict[str, ast.expr]:
    chosen = (
        draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))) if names else []
    )
    out = {name: draw(values()) for name in chosen}
    if draw(st.integers(0, 9)) == 0:
        out["_"] = dotted("kwargs")  # **kwargs
    return out


LAYERS = {
    "nn.Linear": ["in_features", "out_features", "bias"],
    "nn.Conv2d": ["in_channels", "out_channels", "kernel_size", "padding", "stride"],
    "nn.ReLU": ["inplace"],
    "nn.LeakyReLU": ["negative_slope"],
    "nn.Sigmoid": [],
    "nn.Tanh": [],
    "nn.Softmax": ["dim"],
    "nn.LogSoftmax": ["dim"],
    "nn.Dropout": ["p"],
    "nn.BatchNorm1d": ["num_features"],
    "nn.LayerNorm": ["normalized_shape"],
    "nn.RNN": ["input_size", "hidden_size", "nonlinearity", "num_layers"],
    "nn.LSTM": ["input_size", "hidden_size"],
    "nn.Flatten": [],
    "nn.Identity": [],
    "nn.Embedding": ["num_embeddings", "embedding_dim"],
}
LOSSES = [
    "nn.CrossEntropyLoss",
    "nn.BCEWithLogitsLoss",
    "nn.BCELoss",
    "nn.MSELoss",
    "nn.NLLLoss",
    "nn.L1Loss",
    "nn.HuberLoss",
]
FUNCTIONAL = [
    "F.relu",
    "F.softmax",
    "F.log_softmax",
    "torch.sigmoid",
    "torch.tanh",
    "F.dropout",
    "torch.softmax",
    "F.cross_entropy",
    "F.binary_cross_entropy",
    "F.nll_loss",
    "F.mse_loss",
    "torch.relu",
]
OPTIMIZERS = [
    "torch.optim.SGD",
    "torch.optim.Adam",
    "torch.optim.AdamW",
    "torch.optim.RMSprop",
    "optim.SGD",
    "optim.Adagrad",
    "torch.optim.LBFGS",
]
INITS = [
    "nn.init.normal_",
    "nn.init.uniform_",
    "nn.init.zeros_",
    "nn.init.constant_",
    "nn.init.ones_",
    "nn.init.kaiming_normal_",
    "nn.init.kaiming_uniform_",
    "nn.init.xavier_uniform_",
    "nn.init.xavier_normal_",
    "nn.init.orthogonal_",
    "torch.nn.init.eye_",
]
MODEL_NAMES = st.sampled_from(["model", "net", "self", "model.module", "m"])


@st.composite
def layer(draw: st.DrawFn) -> ast.expr:
    name = draw(st.sampled_from(sorted(LAYERS)))
    kwargs = draw(keywords(LAYERS[name]))
    args = [draw(values()) for _ in range(draw(st.integers(0, 3)))]
    return call(name, args, **kwargs)


@st.composite
def sequential(draw: st.DrawFn) -> ast.expr:
    layers = draw(st.lists(layer(), max_size=8))
    if draw(st.booleans()):
        return call("nn.Sequential", layers)
    named = ast.Dict([ast.Constant(f"l{i}") for i in range(len(layers))], layers)
    return call("nn.Sequential", [call("OrderedDict", [named])])


@st.composite
def forward_expr(draw: st.DrawFn, attributes: list[str]) -> ast.expr:
    node: ast.expr = dotted("x")
    for _ in range(draw(st.integers(0, 6))):
        if attributes and draw(st.booleans()):
            node = call(dotted(f"self.{draw(st.sampled_from(attributes))}"), [node])
        else:
            extra = {"dim": draw(values())} if draw(st.booleans()) else {}
            node = call(draw(st.sampled_from(FUNCTIONAL)), [node], **extra)
    return node


@st.composite
def module_class(draw: st.DrawFn) -> ast.stmt:
    attributes = [f"fc{i}" for i in range(draw(st.integers(0, 6)))]
    init_body = [expr_stmt(call(ast.Attribute(call("super"), "__init__", ast.Load())))]
    for attr in attributes:
        value = draw(st.one_of(layer(), sequential(), values()))
        init_body.append(assign(f"self.{attr}", value))
    for _ in range(draw(st.integers(0, 3))):
        init_body.append(expr_stmt(draw(init_call())))
    if draw(st.booleans()):
        weight = call("nn.Parameter", [call("torch.randn", [draw(values()), draw(values())])])
        init_body.append(assign("self.w", weight))
    fwd: list[ast.stmt] = []
    for _ in range(draw(st.integers(0, 3))):
        fwd.append(assign("x", draw(forward_expr(attributes))))
    fwd.append(ast.Return(draw(forward_expr(attributes))))
    methods = [function("__init__", ["self"], init_body), function("forward", ["self", "x"], fwd)]
    base = draw(st.sampled_from(["nn.Module", "torch.nn.Module", "pl.LightningModule", "object"]))
    name = draw(st.sampled_from(["Net", "Model", "MLP", "Classifier"]))
    return ast.ClassDef(
        name=name, bases=[dotted(base)], keywords=[], body=methods, decorator_list=[]
    )


@st.composite
def init_call(draw: st.DrawFn) -> ast.expr:
    target = dotted(
        draw(st.sampled_from(["self.fc0.weight", "layer.weight", "m.weight", "w", "self.fc1.bias"]))
    )
    name = draw(st.sampled_from(INITS))
    kwargs = draw(keywords(["std", "mean", "a", "b", "val", "gain", "nonlinearity", "mode"]))
    return call(name, [target, *[draw(values()) for _ in range(draw(st.integers(0, 2)))]], **kwargs)


@st.composite
def optimizer(draw: st.DrawFn) -> ast.expr:
    model = draw(MODEL_NAMES)
    params: ast.expr = call(f"{model}.parameters")
    if draw(st.integers(0, 4)) == 0:
        group = ast.Dict([ast.Constant("params"), ast.Constant("lr")], [params, draw(values())])
        params = ast.List([group], ast.Load())
    args = [params] + ([draw(values())] if draw(st.integers(0, 3)) == 0 else [])
    kwargs = draw(keywords(["lr", "momentum", "weight_decay", "nesterov", "betas", "eps"]))
    return call(draw(st.sampled_from(OPTIMIZERS)), args, **kwargs)


TRAIN_STEPS = {
    "zero_grad": lambda d: expr_stmt(
        call(
            f"{d(st.sampled_from(['optimizer', 'opt', 'model']))}.zero_grad",
            **({"set_to_none": ast.Constant(True)} if d(st.booleans()) else {}),
        )
    ),
    "forward": lambda d: assign("out", call(d(MODEL_NAMES), [dotted("x")])),
    "loss": lambda d: assign(
        "loss",
        call(
            d(st.sampled_from(["criterion", "loss_fn", *FUNCTIONAL])), [dotted("out"), dotted("y")]
        ),
    ),
    "backward": lambda d: expr_stmt(call("loss.backward")),
    "step": lambda d: expr_stmt(
        call(f"{d(st.sampled_from(['optimizer', 'opt', 'scheduler']))}.step")
    ),
    "eval": lambda d: expr_stmt(call(f"{d(MODEL_NAMES)}.{d(st.sampled_from(['eval', 'train']))}")),
    "accumulate": lambda d: ast.AugAssign(dotted("total"), ast.Add(), call("loss.item")),
    "break": lambda d: ast.Break(),
}


@st.composite
def loop(draw: st.DrawFn, depth: int = 0) -> ast.stmt:
    steps = draw(st.lists(st.sampled_from(sorted(TRAIN_STEPS)), max_size=8))
    body: list[ast.stmt] = [TRAIN_STEPS[s](draw) for s in steps]
    if depth < 2 and draw(st.integers(0, 2)) == 0:
        body.append(draw(loop(depth + 1)))
    if draw(st.integers(0, 4)) == 0:
        guard = call(draw(st.sampled_from(["torch.no_grad", "torch.inference_mode", "open"])))
        body = [ast.With([ast.withitem(guard, None)], body or [ast.Pass()])]
    body = body or [ast.Pass()]
    kind = draw(st.sampled_from(["range", "loader", "while", "product", "list"]))
    if kind == "while":
        return ast.While(draw(values()), body, [])
    target = dotted(draw(st.sampled_from(["epoch", "lr", "x", "batch"])))
    target.ctx = ast.Store()  # type: ignore[attr-defined]
    if kind == "loader":
        pair = ast.Tuple([ast.Name("x", ast.Store()), ast.Name("y", ast.Store())], ast.Store())
        return ast.For(
            pair,
            dotted(draw(st.sampled_from(["train_loader", "val_loader", "loader", "test_loader"]))),
            body,
            [],
        )
    if kind == "product":
        lists = [
            ast.List([draw(values()) for _ in range(3)], ast.Load())
            for _ in range(draw(st.integers(0, 5)))
        ]
        return ast.For(target, call("itertools.product", lists), body, [])
    if kind == "list":
        return ast.For(
            target,
            ast.List([draw(values()) for _ in range(draw(st.integers(0, 4)))], ast.Load()),
            body,
            [],
        )
    return ast.For(target, call("range", [draw(values())]), body, [])


@st.composite
def statement(draw: st.DrawFn) -> ast.stmt:
    kind = draw(
        st.sampled_from(
            [
                "optimizer",
                "model",
                "class",
                "loss",
                "init",
                "loop",
                "load",
                "argparse",
                "config",
                "scheduler",
                "transform",
                "value",
                "dataloader",
                "grid",
            ]
        )
    )
    if kind == "optimizer":
        return assign(draw(st.sampled_from(["optimizer", "opt"])), draw(optimizer()))
    if kind == "model":
        return assign(
            draw(st.sampled_from(["model", "net"])),
            draw(st.one_of(sequential(), layer(), st.just(call("Net")))),
        )
    if kind == "class":
        return draw(module_class())
    if kind == "loss":
        name = draw(st.sampled_from(LOSSES))
        return assign(
            draw(st.sampled_from(["criterion", "loss_fn"])),
            call(name, **draw(keywords(["reduction", "weight", "pos_weight"]))),
        )
    if kind == "init":
        return expr_stmt(draw(init_call()))
    if kind == "loop":
        return draw(loop())
    if kind == "load":
        kwargs = draw(keywords(["weights_only", "map_location", "mmap"]))
        return assign(
            "state", call(draw(st.sampled_from(["torch.load", "load"])), [draw(values())], **kwargs)
        )
    if kind == "argparse":
        flag = draw(
            st.sampled_from(["--lr", "--epochs", "--weight-decay", "--dropout", "--momentum"])
        )
        kwargs = draw(keywords(["type", "default", "help"]))
        return expr_stmt(call("parser.add_argument", [ast.Constant(flag)], **kwargs))
    if kind == "config":
        keys = draw(
            st.lists(
                st.sampled_from(["lr", "epochs", "weight_decay", "p", "momentum", "batch_size"]),
                max_size=5,
            )
        )
        return assign(
            draw(st.sampled_from(["config", "cfg", "params"])),
            ast.Dict([ast.Constant(k) for k in keys], [draw(values()) for _ in keys]),
        )
    if kind == "scheduler":
        name = draw(
            st.sampled_from(
                [
                    "torch.optim.lr_scheduler.StepLR",
                    "lr_scheduler.ReduceLROnPlateau",
                    "torch.optim.lr_scheduler.CosineAnnealingLR",
                ]
            )
        )
        return assign(
            "scheduler",
            call(name, [dotted("optimizer")], **draw(keywords(["step_size", "gamma", "T_max"]))),
        )
    if kind == "transform":
        return assign(
            "transform",
            call(
                "transforms.Compose",
                [
                    ast.List(
                        [
                            call("transforms.ToTensor"),
                            call("transforms.Normalize", [draw(values()), draw(values())]),
                        ][: draw(st.integers(0, 2))],
                        ast.Load(),
                    )
                ],
            ),
        )
    if kind == "dataloader":
        return assign(
            draw(st.sampled_from(["train_loader", "val_loader", "loader"])),
            call("DataLoader", [dotted("dataset")], **draw(keywords(["batch_size", "shuffle"]))),
        )
    if kind == "grid":
        return assign(
            "grid",
            call(
                "GridSearchCV",
                [
                    dotted("model"),
                    ast.Dict(
                        [ast.Constant(k) for k in ("lr", "wd", "p")],
                        [ast.List([draw(values())], ast.Load())] * 3,
                    ),
                ],
            ),
        )
    return assign(draw(st.sampled_from(["lr", "epochs", "x", "n", "self.lr"])), draw(values()))


IMPORTS = """\
import argparse
import itertools
import math
from collections import OrderedDict
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import optim
from torch.optim import lr_scheduler
from torch.utils.data import DataLoader
import lightning as pl
from torchvision import transforms
from sklearn.model_selection import GridSearchCV
"""


@st.composite
def generated_scripts(draw: st.DrawFn) -> str:
    """A training-script-like module, valid Python by construction (built as an AST)."""
    body = draw(st.lists(statement(), min_size=1, max_size=10))
    if draw(st.booleans()):
        body = [function("main", [], body)]
    imports = ast.parse(IMPORTS).body
    chosen = draw(st.lists(st.sampled_from(imports), min_size=1, max_size=len(imports)))
    module = ast.Module([*chosen, *body], [])
    return ast.unparse(ast.fix_missing_locations(module))


# ----------------------------------------------------------------------------- text and mutations

TOKENS = [
    "import torch",
    "from torch import nn",
    "\n",
    "\n    ",
    "\t",
    " ",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ":",
    ",",
    ".",
    "=",
    "==",
    "**",
    "*",
    "@",
    "lambda",
    "def",
    "class",
    "for",
    "in",
    "while",
    "with",
    "if",
    "else",
    "return",
    "yield",
    "async",
    "await",
    "nn.Linear",
    "nn.Sequential",
    "optim.SGD",
    "lr=",
    "0.1",
    "1e309",
    "-1",
    "model",
    "optimizer.zero_grad()",
    "loss.backward()",
    "optimizer.step()",
    "torch.load(",
    "weights_only=",
    "True",
    "None",
    "'s",
    '"',
    '"""',
    "#",
    "# nnprobe: ignore[NP101]",
    "# noqa: NP120",
    "# nnprobe: ignore-file",
    "\\",
    "f'{x}'",
    ";",
    "nn.init.normal_(",
    "std=",
    "p=",
    "self.",
    "super().__init__()",
    "x",
    "F.softmax(",
    "dim=",
    "nn.CrossEntropyLoss()",
    "range(",
    "for epoch in range(",
    "match",
    "case",
    "_",
    ":=",
    "\x0c",
    "\u00e9",
    "\u200b",
    "\U0001f600",
    "\r\n",
    "\r",
]


@st.composite
def python_text(draw: st.DrawFn) -> str:
    prefix = draw(st.sampled_from(["import torch\n", "from torch import nn\n", ""]))
    pieces = draw(st.lists(st.one_of(st.sampled_from(TOKENS), st.text(max_size=3)), max_size=80))
    return prefix + "".join(pieces)


def _insert(text: str, at: int, piece: str) -> str:
    return text[:at] + piece + text[at:]


EDIT_KINDS = (
    "number",
    "insert",
    "delete",
    "truncate",
    "duplicate-line",
    "bracket",
    "unicode",
    "tabs",
    "swap-lines",
    "dedent",
)


@st.composite
def typed_edits(draw: st.DrawFn, source: str) -> str:
    """`source` after one to eight edits a person might make mid-typing."""
    text = source
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 5, 8]))):
        kind = draw(st.sampled_from(EDIT_KINDS))
        at = draw(st.integers(0, len(text)))
        lines = text.split("\n")
        row = draw(st.integers(0, max(len(lines) - 1, 0)))
        if kind == "number":
            numbers = list(re.finditer(r"\d+(?:\.\d*)?(?:e-?\d+)?", text))
            if numbers:
                match = draw(st.sampled_from(numbers))
                value = repr(draw(POOL)) if draw(st.booleans()) else str(draw(INTS))
                text = text[: match.start()] + value + text[match.end() :]
        elif kind == "insert":
            text = _insert(
                text, at, draw(st.one_of(st.sampled_from(TOKENS), st.text(min_size=1, max_size=5)))
            )
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif kind == "truncate":
            text = text[:at]
        elif kind == "duplicate-line":
            lines.insert(row, lines[row])
            text = "\n".join(lines)
        elif kind == "bracket":
            text = _insert(
                text, at, draw(st.sampled_from(list("([{)]}") + ['"', "'", '"""', "\\"]))
            )
        elif kind == "unicode":
            text = _insert(
                text, at, draw(st.text(st.characters(codec="utf-8"), min_size=1, max_size=3))
            )
        elif kind == "tabs":
            lines[row] = (
                lines[row].replace("    ", "\t", 1) if draw(st.booleans()) else "\t" + lines[row]
            )
            text = "\n".join(lines)
        elif kind == "swap-lines":
            other = draw(st.integers(0, len(lines) - 1))
            lines[row], lines[other] = lines[other], lines[row]
            text = "\n".join(lines)
        else:
            lines[row] = lines[row].lstrip()
            text = "\n".join(lines)
    return text


@st.composite
def mutated_bytes(draw: st.DrawFn, source: str) -> bytes:
    """A script as bytes with byte-level damage: invalid UTF-8, NUL, BOMs, coding cookies."""
    data = bytearray(source.encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        piece = draw(
            st.one_of(
                st.binary(min_size=1, max_size=4),
                st.sampled_from(
                    [
                        b"\xff",
                        b"\xc3",
                        b"\x00",
                        b"\xef\xbb\xbf",
                        b"# -*- coding: latin-1 -*-\n",
                        b"# coding: nope\n",
                        b"# coding: utf-16\n",
                    ]
                ),
            )
        )
        data[at:at] = piece
    return bytes(data)


# ----------------------------------------------------------------------------- config

RULES = all_rules()
SELECTORS = [r.code for r in RULES] + [r.name for r in RULES] + ["NP1", "NP", "np10", "ALL", "*"]
OPTIONS = sorted({name for r in RULES for name in r.options})
# Past what TOML holds, but the language server's workspace/configuration is JSON.
HOSTILE = [10**400, -(10**400), "3x\u00b2", "9" * 5000, "3x" + "2" * 4400, float("nan")]
SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from([*SELECTORS, "error", "warning", "info", "train.py:Net", "x.py:", "3x32"]),
    st.sampled_from(HOSTILE),
)
TOML_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _table_of(keys: st.SearchStrategy[str], values: st.SearchStrategy[Any]) -> Any:
    return st.dictionaries(keys, values, max_size=4)


CONFIG_VALUES = {
    "select": st.lists(st.sampled_from(SELECTORS), max_size=3) | TOML_VALUES,
    "extend-select": st.lists(st.sampled_from(SELECTORS), max_size=3) | TOML_VALUES,
    "ignore": st.lists(st.sampled_from(SELECTORS), max_size=3) | TOML_VALUES,
    "severity": _table_of(st.sampled_from(SELECTORS), SCALARS) | TOML_VALUES,
    "rules": st.dictionaries(st.sampled_from(SELECTORS), TOML_VALUES, max_size=2)
    | st.sampled_from([r for r in RULES if r.options]).flatmap(
        lambda rule: st.dictionaries(
            st.sampled_from(sorted(rule.options)),
            TOML_VALUES | st.sampled_from(HOSTILE),
            max_size=3,
        ).map(lambda options: {rule.code: options})
    ),
    "exclude": st.lists(st.text(max_size=6), max_size=3) | TOML_VALUES,
    "per-file-ignores": _table_of(st.text(max_size=6), st.lists(st.sampled_from(SELECTORS)))
    | TOML_VALUES,
    "allow-pickle": TOML_VALUES,
    "models": _table_of(st.text(max_size=6), SCALARS) | TOML_VALUES,
    "probe": TOML_VALUES,
    "input-shape": st.lists(st.integers(-2, 64), max_size=4)
    | st.lists(st.sampled_from(["3", "x", "32", ",", " ", "\u00b2", "-1"])).map("".join)
    | st.sampled_from(HOSTILE)
    | TOML_VALUES,
    "probe-batch": TOML_VALUES,
    "logs": _table_of(st.sampled_from(["columns", "script", "patterns", "x"]), TOML_VALUES)
    | TOML_VALUES,
}


@st.composite
def config_tables(draw: st.DrawFn) -> dict[str, Any]:
    """One to three known keys with values of any type, sometimes an unknown key beside them."""
    keys = draw(st.lists(st.sampled_from(sorted(CONFIG_VALUES)), min_size=1, max_size=3))
    table = {key: draw(CONFIG_VALUES[key]) for key in keys}
    if draw(st.sampled_from([False] * 5 + [True])):
        table[draw(st.text(max_size=5))] = draw(TOML_VALUES)
    return table


CONFIG_TEXT = """\
[tool.nnprobe]
select = ["NP1", "NP2"]
ignore = ["NP113"]
exclude = ["build/*"]
allow-pickle = false
input-shape = [3, 32, 32]
probe-batch = 64

[tool.nnprobe.severity]
NP103 = "warning"

[tool.nnprobe.rules.NP101]
sgd-max = 0.05

[tool.nnprobe.per-file-ignores]
"tests/*" = ["NP122"]

[tool.nnprobe.models]
"runs/*.pt" = "train.py:Net"
"""


# ----------------------------------------------------------------------------- the harness


def fuzz_config() -> Config:
    """Every rule on, the off-by-default ones too, so every rule sees every input."""
    config = Config.default(root=ROOT)
    config.select = {rule.code for rule in all_rules()}
    return config


SOURCE_RULES = sum(1 for r in all_rules() if r.evidence is Evidence.SOURCE)


@dataclass
class Tally:
    """What the fuzzer ran and what came back; `escaped` and `isolated` must stay empty."""

    inputs: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(
        default_factory=Counter
    )  # parsed / syntax-error / unreadable / not-torch
    rule_answers: int = 0
    isolated: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, message, source)
    escaped: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, error, source)
    started: float = field(default_factory=time.perf_counter)

    def summary(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.inputs.items()))
        outcomes = ", ".join(f"{k} {n}" for k, n in sorted(self.outcomes.items()))
        return (
            f"static fuzz: {sum(self.inputs.values())} inputs ({kinds}); outcomes: {outcomes}; "
            f"rule answers {self.rule_answers}; NP907 isolated {len(self.isolated)}; "
            f"exceptions escaped {len(self.escaped)}; {time.perf_counter() - self.started:.1f} s"
        )


@contextmanager
def counting_rules(tally: Tally) -> Iterator[None]:
    """Count each rule that runs through the handler's run_rules (delegating to the real one)."""
    real = handler.run_rules

    def counted(rules: Any, ctx: object, path: str, config: Config) -> list[Finding]:
        rules = list(rules)
        found = real(rules, ctx, path, config)
        failed = sum(1 for f in found if f.code == "NP907")
        tally.rule_answers += len(rules) - failed
        return found

    handler.run_rules = counted  # type: ignore[assignment]
    try:
        yield
    finally:
        handler.run_rules = real


def _classify(findings: list[Finding]) -> str:
    codes = {f.code for f in findings}
    if "NP906" in codes:
        return "syntax-error"
    if "NP901" in codes:
        return "unreadable"
    return "analysed"


def check_source(tally: Tally, kind: str, text: str, config: Config) -> list[Finding]:
    """Analyse buffer text the way the language server's lint child does; record the outcome."""
    tally.inputs[kind] += 1
    try:
        findings = handler.check_text(text, "fuzz.py", config, "fuzz.py")
    except Exception as exc:  # the property under test: nothing escapes
        tally.escaped.append((kind, f"{type(exc).__name__}: {exc}", text))
        raise
    _record(tally, kind, findings, text)
    return findings


def check_file(tally: Tally, kind: str, data: bytes, config: Config, folder: Path) -> list[Finding]:
    """Analyse bytes on disk the way `nnprobe inspect` does (decoding included)."""
    tally.inputs[kind] += 1
    path = folder / "fuzz.py"
    path.write_bytes(data)
    try:
        result = handler.check_script(Target(path, "fuzz.py", explicit=True), config)
    except Exception as exc:
        tally.escaped.append((kind, f"{type(exc).__name__}: {exc}", repr(data)))
        raise
    _record(tally, kind, result.findings, repr(data))
    if not result.analysed:
        tally.outcomes["not-torch"] += 1
    return result.findings


def _record(tally: Tally, kind: str, findings: list[Finding], source: str) -> None:
    tally.outcomes[_classify(findings)] += 1
    for finding in findings:
        if finding.code == "NP907":
            tally.isolated.append((kind, finding.message, source))


def scratch_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="nnprobe-fuzz-"))


Checker = Callable[[Tally, str, str, Config], list[Finding]]


def check_config_table(tally: Tally, table: Mapping[str, Any]) -> Config | None:
    """A settings table (TOML, or the server's workspace/configuration) is a Config or a
    ConfigError with a message; anything else escapes and is recorded."""
    tally.inputs["config-table"] += 1
    try:
        config = parse_config(table, root=ROOT)
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError without a message"
        tally.outcomes["config-error"] += 1
        return None
    except Exception as exc:
        tally.escaped.append(("config-table", f"{type(exc).__name__}: {exc}", repr(table)[:2000]))
        raise
    tally.outcomes["config-accepted"] += 1
    return config


def check_config_file(tally: Tally, text: str, folder: Path) -> Config | None:
    """The same for a pyproject.toml on disk, through the TOML reader."""
    tally.inputs["config-file"] += 1
    path = folder / "pyproject.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_config(path)
    except ConfigError as exc:
        assert str(exc).strip(), "a ConfigError without a message"
        tally.outcomes["config-error"] += 1
        return None
    except Exception as exc:
        tally.escaped.append(("config-file", f"{type(exc).__name__}: {exc}", text))
        raise
    tally.outcomes["config-accepted"] += 1
    return config
