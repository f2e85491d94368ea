"""What a definitions-only import runs of a workspace module, statement by statement.

A trusted workspace's model factory lives in a script whose top level usually trains. nnprobe
runs only the statements that define names, and only when nothing in them calls workspace code
or anything else with effects. The contract, checked here one top-level statement at a time
against the names bound so far:

- `import` / `from ... import`: run (workspace modules they reach get this same treatment).
- `NAME = value` (also `a, b = ...`, `NAME: T = value`): run when `value` is a constant
  expression (below); assignments to attributes or subscripts, and to dunder names other than
  `__all__`/`__version__`/`__author__`, are not.
- `def`: run when every decorator is a known one (below) and every default argument is a
  constant expression; a module-level `__getattr__`/`__dir__` is not defined.
- `class`: run when its decorators are known ones, each base is a plain (dotted) name of a class,
  the only keyword is `metaclass=` naming `type` or `abc.ABCMeta`, the metaclass it ends up
  with is `type`, `abc.ABCMeta` or torch's autograd `FunctionMeta`, and no base has an
  `__init_subclass__` defined in the workspace. Its body keeps docstrings, `def`s (checked as
  above, `__init_subclass__` and `__class_getitem__` left out), nested classes and assignments of
  constant expressions; any other statement in it is left out.
- `if TEST:` runs the branch Python would take when TEST is a constant expression, under these
  rules (so `if __name__ == "__main__":` is false); `if TYPE_CHECKING:` is false, as in Python.
- `try:` with handlers naming plain exception classes (`except ImportError:`) runs its blocks
  under these rules.
- Everything else (calls, loops, `with`, `del`, `match`, in-place assignments, ...) is skipped.

A constant expression is made of literals, names bound so far, attribute lookups (not of
dunder names other than `__name__`/`__file__`/`__doc__`/`__version__`), subscripts, operators,
f-strings, conditional expressions, lambdas (with constant defaults) and calls of a fixed list
of functions that compute a value from plain data (`len`, `max`, `os.path.join`,
`os.environ.get`, `pathlib.Path`, `math.sqrt`, `torch.device`, `torch.cuda.is_available`,
`torch.tensor`, ...; `dataclasses.field`, `TypeVar`, `namedtuple`, `logging.getLogger`, which
keep their arguments without calling them). Calls of anything else, comprehensions, walrus
(`:=`) and `await`/`yield` make an expression non-constant. Known decorators: `staticmethod`,
`classmethod`, `property` (and its `.setter`/`.getter`/`.deleter`), `dataclasses.dataclass`,
`abc.abstractmethod`, `functools.cached_property`/`lru_cache`/`cache`/`total_ordering`,
`typing.overload`/`final`/`no_type_check`, `contextlib.contextmanager`, `torch.no_grad`,
`torch.enable_grad`, `torch.inference_mode` and `torch.jit.export`/`ignore`/`unused`, bare or
called with plain data. Names are checked by what they are bound to, not how they are spelt:
a workspace function called `len`, or a workspace `dataclasses.py`, is not the known one.

The checker evaluates every expression itself before Python does (attribute lookups on
workspace modules read their `__dict__`); an expression that fails or is refused makes its
statement skipped, and a later statement that needs a skipped name is skipped in turn. So no
workspace function runs and no object the workspace defines is called while its definitions
are imported: workspace code runs only when nnprobe calls the model factory (the class's
`__init__`) or the probe callable. Annotations are never evaluated (the module is compiled as
with `from __future__ import annotations`). Each skipped statement is recorded (`Skipped`) with
its line, what it would have bound and why it was skipped, for the message of a factory that
could not be built.
"""

from __future__ import annotations
import __future__

import abc
import ast
import builtins
import collections
import contextlib
import copy
import dataclasses
import functools
import logging
import math
import operator
import os
import pathlib
import re
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

COMPILE_FLAGS = __future__.annotations.compiler_flag
log = logging.getLogger("nnprobe.probe.definitions")

MODULE_DUNDERS = frozenset({"__all__", "__version__", "__author__", "__license__"})
READABLE_DUNDERS = frozenset({"__name__", "__file__", "__doc__", "__version__", "__qualname__"})
# Run by Python on their own when a class is created or subscripted, or an attribute of the
# module is missing: never defined by a definitions-only import.
CLASS_HOOKS = frozenset({"__init_subclass__", "__class_getitem__"})
MODULE_HOOKS = frozenset({"__getattr__", "__dir__"})
MAX_INT_BITS = 1_000_000  # `10 ** 10 ** 8` would take minutes; a real constant is far smaller
MAX_LENGTH = 10_000_000  # items or characters a `*` repetition may build
_WIDE_FORMAT = re.compile(r"\d{7,}")  # a format width of a million characters or more


class Refused(Exception):
    """A statement or expression a definitions-only import does not run; `why` is for the user."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(why)
        self.kind = kind
        self.why = why


@dataclass(frozen=True)
class Skipped:
    """One statement a definitions-only import did not run."""

    file: str
    line: int
    source: str  # its first line, shortened
    kind: str  # "call", "loop", "decorator", "metaclass", ...
    why: str
    binds: tuple[str, ...]  # the names it would have bound
    owner: str = ""  # the class whose body held it
    module: str = ""  # the name of the module it was skipped in

    def describe(self) -> str:
        where = f"{self.file}:{self.line}"
        inside = f" in class {self.owner}" if self.owner else ""
        return f"{where}{inside} `{self.source}` ({self.why})"


class Placeholder:
    """A name a class body binds, seen by the checker before Python builds the class."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "function", "property", "class", "value"


_PROPERTY_METHOD = Placeholder("property-method")


# ---------------------------------------------------------------------------------- known objects


def _objects(module: Any, names: str) -> list[Any]:
    found = []
    for name in names.split():
        obj: Any = module
        for part in name.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            found.append(obj)
    return found


class Known:
    """The library callables, decorators and metaclasses a definitions-only import may use, by
    identity. Built per import, since torch or numpy may be imported by the script itself."""

    def __init__(self) -> None:
        self.calls: dict[int, tuple[Any, str]] = {}
        data = [
            *_objects(builtins, "len int float str bool tuple list dict set frozenset range"),
            *_objects(builtins, "min max sum abs round sorted any all repr chr ord hex oct bin"),
            *_objects(os, "getenv cpu_count getcwd fspath"),
            *_objects(
                os.path,
                "join dirname abspath basename expanduser splitext normpath realpath exists "
                "isfile isdir",
            ),
            *_objects(pathlib, "Path PurePath PosixPath PurePosixPath WindowsPath"),
            *_objects(math, "sqrt log log2 log10 exp ceil floor prod isqrt gcd radians"),
        ]
        store = [
            *_objects(typing, "TypeVar NewType"),
            collections.namedtuple,
            dataclasses.field,
            logging.getLogger,
        ]
        torch = sys.modules.get("torch")
        if torch is not None:
            data += _objects(
                torch,
                "device cuda.is_available cuda.device_count backends.mps.is_available tensor "
                "as_tensor zeros ones full arange linspace eye get_default_dtype finfo iinfo",
            )
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            data += _objects(numpy, "array asarray zeros ones full arange linspace eye")
        for obj in data:
            self.calls[id(obj)] = (obj, "data")
        for obj in store:
            self.calls[id(obj)] = (obj, "store")
        decorators = [
            staticmethod,
            classmethod,
            property,
            dataclasses.dataclass,
            abc.abstractmethod,
            *_objects(functools, "cached_property lru_cache cache total_ordering"),
            *_objects(typing, "overload final no_type_check"),
            contextlib.contextmanager,
        ]
        if torch is not None:
            decorators += _objects(
                torch, "no_grad enable_grad inference_mode jit.export jit.ignore jit.unused"
            )
        self.decorators = {id(d): d for d in decorators}
        metaclasses: list[Any] = [type, abc.ABCMeta]
        if torch is not None:
            metaclasses += _objects(torch, "autograd.function.FunctionMeta")
        self.metaclasses = {id(m): m for m in metaclasses}

    def call_policy(self, func: Any) -> str | None:
        entry = self.calls.get(id(func))
        if entry is not None and entry[0] is func:
            return entry[1]
        owner = getattr(func, "__self__", None)
        name = getattr(func, "__name__", "")
        if owner is os.environ and name == "get":
            return "data"
        if is_data(owner) and name in _DATA_METHODS.get(_data_kind(owner), ()):
            return "data"
        return None

    def is_decorator(self, obj: Any) -> bool:
        return self.decorators.get(id(obj)) is obj

    def is_metaclass(self, obj: Any) -> bool:
        return self.metaclasses.get(id(obj)) is obj


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_DATA_METHODS: dict[str, frozenset[str]] = {
    "str": _words(
        "upper lower strip lstrip rstrip split rsplit join startswith endswith format title "
        "capitalize casefold partition rpartition splitlines removeprefix removesuffix isdigit "
        "isalpha isalnum encode count find index"
    ),
    "bytes": _words("decode startswith endswith split strip"),
    "dict": _words("get keys values items copy"),
    "sequence": _words("index count copy"),
    "path": _words(
        "resolve absolute expanduser joinpath with_name with_suffix with_stem relative_to "
        "as_posix exists is_file is_dir"
    ),
}
_SCALARS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))


def _data_kind(value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, tuple | list):
        return "sequence"
    if isinstance(value, pathlib.PurePath):
        return "path"
    return ""


def is_data(value: Any, depth: int = 0) -> bool:
    """Plain data: what a known function may be given, since nothing in it can be called back
    (numbers, strings, containers of them, paths, and torch/numpy dtypes, devices and arrays)."""
    if depth > 32:
        return False
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind in (tuple, list, set, frozenset):
        return all(is_data(item, depth + 1) for item in value)
    if kind is dict:
        return all(is_data(k, depth + 1) and is_data(v, depth + 1) for k, v in value.items())
    if isinstance(value, pathlib.PurePath):
        return kind.__module__ == "pathlib"
    library = kind.__module__.split(".")[0]
    return library in ("torch", "numpy") and not callable(value)


# ---------------------------------------------------------------------------------- expressions


class Scope:
    """The names an expression sees: a class body's (simulated) names, the module's, builtins."""

    def __init__(self, module: dict[str, Any], local: dict[str, Any] | None = None) -> None:
        self.module = module
        self.local = local

    def lookup(self, name: str) -> Any:
        for names in (self.local, self.module, builtins.__dict__):
            if names is not None and name in names:
                return names[name]
        raise Refused("name", f"uses {name}, which is not defined at this point")


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
    ast.BitXor: operator.xor,
    ast.MatMult: operator.matmul,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.not_,
    ast.Invert: operator.invert,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
ModelCheck = Callable[[Any], bool]


class Evaluator:
    """Evaluates a constant expression, refusing (Refused) anything that could run code it does
    not know. `module_call` additionally allows calling classes it accepts (the model expression
    `nn.Sequential(nn.Linear(4, 2), nn.ReLU())`), with module instances and classes as arguments."""

    def __init__(
        self,
        scope: Scope,
        known: Known,
        is_workspace: Callable[[Any], bool],
        module_call: ModelCheck | None = None,
        module_arg: ModelCheck | None = None,
    ) -> None:
        self.scope = scope
        self.known = known
        self.is_workspace = is_workspace
        self.module_call = module_call
        self.module_arg = module_arg

    def value(self, node: ast.expr) -> Any:
        try:
            return self._value(node)
        except RecursionError:
            raise Refused("expression", "is nested too deeply to check") from None

    def _value(self, node: ast.expr) -> Any:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            raise Refused("expression", f"{_kind_name(node)} is not evaluated")
        return method(node)

    def _Constant(self, node: ast.Constant) -> Any:
        return node.value

    def _Name(self, node: ast.Name) -> Any:
        return self.scope.lookup(node.id)

    def _Attribute(self, node: ast.Attribute) -> Any:
        base = self._value(node.value)
        attr = node.attr
        if attr.startswith("__") and attr not in READABLE_DUNDERS:
            raise Refused("expression", f"reads .{attr}")
        if isinstance(base, Placeholder):
            if base.kind == "property" and attr in ("setter", "getter", "deleter"):
                return _PROPERTY_METHOD
            raise Refused("expression", f"reads .{attr} of a {base.kind} of the class")
        if isinstance(base, types.ModuleType) and self.is_workspace(base):
            if attr not in base.__dict__:
                raise Refused("name", f"uses {base.__name__}.{attr}, which is not defined there")
            return base.__dict__[attr]
        return self._guard(lambda: getattr(base, attr), f".{attr}")

    def _Subscript(self, node: ast.Subscript) -> Any:
        base = self._value(node.value)
        index = self._value(node.slice)
        self._no_placeholder(base, index)
        return self._guard(lambda: base[index], "a subscript")

    def _Slice(self, node: ast.Slice) -> slice:
        parts = [None if p is None else self._value(p) for p in (node.lower, node.upper, node.step)]
        return slice(*parts)

    def _Tuple(self, node: ast.Tuple) -> tuple[Any, ...]:
        return tuple(self._items(node.elts))

    def _List(self, node: ast.List) -> list[Any]:
        return self._items(node.elts)

    def _Set(self, node: ast.Set) -> set[Any]:
        items = self._items(node.elts)
        return set(self._guard(functools.partial(set, items), "a set"))

    def _Dict(self, node: ast.Dict) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                mapping = self._value(value)
                if not isinstance(mapping, dict):
                    raise Refused("expression", "unpacks something that is not a dict")
                out.update(mapping)
            else:
                k, v = self._value(key), self._value(value)
                self._no_placeholder(k)
                self._guard(functools.partial(out.__setitem__, k, v), "a dict")
        return out

    def _items(self, elts: list[ast.expr]) -> list[Any]:
        items: list[Any] = []
        for elt in elts:
            if isinstance(elt, ast.Starred):
                inner = self._value(elt.value)
                if not isinstance(inner, tuple | list | str | range | set | frozenset):
                    raise Refused("expression", "unpacks something that is not plain data")
                items.extend(inner)
            else:
                items.append(self._value(elt))
        return items

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:
        operand = self._value(node.operand)
        self._no_placeholder(operand)
        return self._guard(lambda: _UNARY[type(node.op)](operand), "an operator")

    def _BinOp(self, node: ast.BinOp) -> Any:
        left, right = self._value(node.left), self._value(node.right)
        self._no_placeholder(left, right)
        _check_size(node.op, left, right)
        return self._guard(lambda: _BINARY[type(node.op)](left, right), "an operator")

    def _BoolOp(self, node: ast.BoolOp) -> Any:
        result: Any = None
        for value in node.values:
            result = self._value(value)
            self._no_placeholder(result)
            truth = self._guard(functools.partial(bool, result), "a truth test")
            if isinstance(node.op, ast.And) != truth:
                return result
        return result

    def _Compare(self, node: ast.Compare) -> Any:
        left = self._value(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self._value(comparator)
            self._no_placeholder(left, right)
            held = self._guard(functools.partial(_COMPARE[type(op)], left, right), "a comparison")
            if not self._guard(functools.partial(bool, held), "a truth test"):
                return held
            left = right
        return held

    def _IfExp(self, node: ast.IfExp) -> Any:
        test = self._value(node.test)
        self._no_placeholder(test)
        taken = self._guard(lambda: bool(test), "a truth test")
        return self._value(node.body if taken else node.orelse)

    def _JoinedStr(self, node: ast.JoinedStr) -> str:
        return "".join(str(self._value(part)) for part in node.values)

    def _FormattedValue(self, node: ast.FormattedValue) -> str:
        value = self._value(node.value)
        self._no_placeholder(value)
        spec = "" if node.format_spec is None else str(self._value(node.format_spec))
        if _WIDE_FORMAT.search(spec):
            raise Refused("expression", "formats to a width of millions of characters")
        conversion = {-1: None, 115: str, 114: repr, 97: ascii}[node.conversion]
        if conversion is not None:
            value = self._guard(lambda: conversion(value), "a conversion")
        return str(self._guard(functools.partial(format, value, spec), "a format"))

    def _Lambda(self, node: ast.Lambda) -> Placeholder:
        self.defaults(node.args)
        return Placeholder("function")

    def defaults(self, args: ast.arguments) -> None:
        params = [*args.posonlyargs, *args.args]
        for param, default in zip(
            params[len(params) - len(args.defaults) :], args.defaults, strict=True
        ):
            self._default(param.arg, default)
        for param, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
            if kw_default is not None:
                self._default(param.arg, kw_default)

    def _default(self, name: str, default: ast.expr) -> None:
        try:
            self._value(default)
        except Refused as exc:
            raise Refused("default argument", f"default of {name}: {exc.why}") from None

    def _Call(self, node: ast.Call) -> Any:
        func = self._value(node.func)
        shown = _short(ast.unparse(node.func), 40)
        if isinstance(func, Placeholder):
            raise Refused("call", f"calls {shown}(), defined in the workspace")
        policy = self.known.call_policy(func)
        if policy is None and self.module_call is not None and self.module_call(func):
            policy = "module"
        if policy is None:
            where = (
                "defined in the workspace" if self.is_workspace(func) else "not a known pure call"
            )
            raise Refused("call", f"calls {shown}(), {where}")
        args = self._items(node.args)
        kwargs: dict[str, Any] = {}
        for keyword in node.keywords:
            value = self._value(keyword.value)
            if keyword.arg is None:
                if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                    raise Refused("call", f"passes ** of something that is not a dict to {shown}()")
                kwargs.update(value)
            else:
                kwargs[keyword.arg] = value
        for arg in [*args, *kwargs.values()]:
            if policy == "store":
                continue  # kept by the callee, never called by it
            if policy == "module":
                if not (is_data(arg) or (self.module_arg is not None and self.module_arg(arg))):
                    raise Refused("call", f"passes {type(arg).__name__} to {shown}()")
            elif not is_data(arg):
                raise Refused("call", f"passes {type(arg).__name__}, not plain data, to {shown}()")
        if policy == "store" and any(isinstance(a, Placeholder) for a in [*args, *kwargs.values()]):
            return Placeholder("value")
        if isinstance(getattr(func, "__self__", None), str) and func.__name__ == "format":
            if _WIDE_FORMAT.search(func.__self__):
                raise Refused("expression", "formats to a width of millions of characters")
        return self._guard(lambda: func(*args, **kwargs), f"{shown}()")

    @staticmethod
    def _no_placeholder(*values: Any) -> None:
        for value in values:
            if isinstance(value, Placeholder):
                raise Refused("expression", f"uses a {value.kind} of the class as a value")

    @staticmethod
    def _guard(compute: Callable[[], Any], what: str) -> Any:
        try:
            return compute()
        except Refused:
            raise
        except Exception as exc:
            raise Refused("expression", f"{what} raised {type(exc).__name__}") from None


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    ints = isinstance(left, int) and isinstance(right, int)
    if isinstance(op, ast.Pow) and ints and right > 0 and abs(left) > 1:
        if right * max(abs(left).bit_length(), 1) > MAX_INT_BITS:
            raise Refused("expression", "computes a number too large to be a constant")
    if isinstance(op, ast.LShift) and ints and right > MAX_INT_BITS:
        raise Refused("expression", "computes a number too large to be a constant")
    if isinstance(op, ast.Mult):
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, str | bytes | tuple | list) and isinstance(count, int):
                if len(seq) * count > MAX_LENGTH:
                    raise Refused("expression", "repeats a sequence to millions of items")
    if isinstance(op, ast.Mod) and isinstance(left, str) and _WIDE_FORMAT.search(left):
        raise Refused("expression", "formats to a width of millions of characters")


# ---------------------------------------------------------------------------------- statements


def _kind_name(node: ast.AST) -> str:
    names = {
        "ListComp": "a comprehension",
        "SetComp": "a comprehension",
        "DictComp": "a comprehension",
        "GeneratorExp": "a generator expression",
        "NamedExpr": "an assignment expression (:=)",
        "Await": "await",
        "Yield": "yield",
        "YieldFrom": "yield",
        "Starred": "a starred expression",
    }
    return names.get(type(node).__name__, type(node).__name__)


_STATEMENT_KINDS = {
    "For": ("loop", "a for loop"),
    "AsyncFor": ("loop", "a for loop"),
    "While": ("loop", "a while loop"),
    "With": ("with", "a with block"),
    "AsyncWith": ("with", "a with block"),
    "Match": ("match", "a match statement"),
    "Delete": ("del", "a del statement"),
    "AugAssign": ("assignment", "an in-place assignment"),
    "Global": ("global", "a global statement"),
    "Raise": ("raise", "a raise statement"),
    "Assert": ("assert", "an assert"),
    "TryStar": ("try", "a try with except*"),
}


def _short(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 3] + "..."


def _binds(stmt: ast.stmt) -> tuple[str, ...]:
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return (stmt.name,)
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return tuple((a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*")
    names: list[str] = []
    stack: list[ast.AST] = [stmt]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
            continue
        if node is stmt or not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return tuple(dict.fromkeys(names))


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    if isinstance(target, ast.Tuple | ast.List):
        return [name for elt in target.elts for name in _target_names(elt)]
    raise Refused("assignment", f"assigns to {_short(ast.unparse(target), 30)}, not to a name")


def _is_name_chain(node: ast.expr) -> bool:
    while isinstance(node, ast.Attribute):
        node = node.value
    return isinstance(node, ast.Name)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


class Runner:
    """Runs one module's definitions into `namespace`, recording what it skips in `skipped`."""

    def __init__(
        self,
        namespace: dict[str, Any],
        filename: str,
        is_workspace: Callable[[Any], bool],
        skipped: list[Skipped],
    ) -> None:
        self.ns = namespace
        self.filename = filename
        self.display = os.path.basename(filename)
        self.is_workspace = is_workspace
        self.skipped = skipped
        self.known = Known()
        self.scope = Scope(namespace)

    def run(self, tree: ast.Module) -> None:
        self.ns.setdefault("__doc__", ast.get_docstring(tree, clean=False))
        before = len(self.skipped)
        self.statements(tree.body)
        mine = self.skipped[before:]
        if mine:
            counts = collections.Counter(s.kind for s in mine if s.file == self.display)
            log.info(
                "%s: definitions-only import skipped %s",
                self.display,
                ", ".join(f"{n} {kind}" for kind, n in counts.most_common()),
            )

    def statements(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            try:
                self.statement(stmt)
            except Refused as refused:
                self.skip(stmt, refused)

    def evaluator(self, scope: Scope | None = None) -> Evaluator:
        return Evaluator(scope or self.scope, self.known, self.is_workspace)

    def skip(self, stmt: ast.stmt, refused: Refused, owner: str = "") -> None:
        try:
            source = _short(ast.unparse(stmt))
        except Exception:
            source = type(stmt).__name__
        self.skipped.append(
            Skipped(
                self.display,
                stmt.lineno,
                source,
                refused.kind,
                refused.why,
                _binds(stmt),
                owner,
                str(self.ns.get("__name__", "")),
            )
        )

    def statement(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Import | ast.ImportFrom | ast.Pass):
            self.execute(stmt)
        elif isinstance(stmt, ast.Expr):
            if not isinstance(stmt.value, ast.Constant):
                what = "a call" if isinstance(stmt.value, ast.Call) else "an expression statement"
                raise Refused("call", f"{what}, not a definition")
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            self.check_assignment(stmt, self.scope, module_level=True)
            self.execute(stmt)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if stmt.name in MODULE_HOOKS:
                raise Refused(
                    "module hook", f"a module-level {stmt.name} runs on attribute lookups"
                )
            self.check_function(stmt, self.scope)
            self.execute(stmt)
        elif isinstance(stmt, ast.ClassDef):
            self.execute(self.check_class(stmt, self.scope))
        elif isinstance(stmt, ast.If):
            if _is_type_checking(stmt.test):  # false when not type checking, as in Python
                self.statements(stmt.orelse)
                return
            try:
                test = self.evaluator().value(stmt.test)
                taken = Evaluator._guard(lambda: bool(test), "a truth test")
            except Refused as exc:
                raise Refused("if", f"its test {exc.why}") from None
            self.statements(stmt.body if taken else stmt.orelse)
        elif isinstance(stmt, ast.Try):
            self.run_try(stmt)
        else:
            kind, what = _STATEMENT_KINDS.get(
                type(stmt).__name__, ("statement", type(stmt).__name__)
            )
            raise Refused(kind, f"{what}, not a definition")

    def execute(self, stmt: ast.stmt) -> None:
        code = compile(
            ast.Module(body=[stmt], type_ignores=[]),
            self.filename,
            "exec",
            flags=COMPILE_FLAGS,
            dont_inherit=True,
        )
        try:
            exec(code, self.ns)
        except Exception as exc:
            if not hasattr(exc, "nnprobe_where"):
                with contextlib.suppress(AttributeError, TypeError):
                    exc.nnprobe_where = f"{self.display}:{stmt.lineno}"  # type: ignore[attr-defined]
            raise

    # ------------------------------------------------------------------ per kind

    def check_assignment(
        self,
        stmt: ast.Assign | ast.AnnAssign,
        scope: Scope,
        module_level: bool,
        local: dict[str, Any] | None = None,
    ) -> None:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        names = [name for target in targets for name in _target_names(target)]
        if stmt.value is None:
            return
        try:
            value = self.evaluator(scope).value(stmt.value)
        except Refused as exc:
            raise Refused(exc.kind if exc.kind != "expression" else "assignment", exc.why) from None
        for name in names:
            if name.startswith("__") and name.endswith("__"):
                if module_level and name not in MODULE_DUNDERS:
                    raise Refused("assignment", f"assigns {name}, which Python itself reads")
                if not is_data(value):
                    raise Refused("assignment", f"assigns {name} something that is not data")
        if local is not None:
            if len(names) == 1:
                local[names[0]] = value
            else:
                for name in names:
                    local[name] = Placeholder("value")

    def check_decorators(self, decorators: list[ast.expr], scope: Scope) -> str:
        """The placeholder kind of what the decorated def binds ("property" or "function")."""
        kind = "function"
        for decorator in decorators:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            shown = _short(ast.unparse(decorator), 40)
            if not _is_name_chain(target):
                raise Refused("decorator", f"decorator @{shown} is not a plain name")
            try:
                obj = self.evaluator(scope).value(target)
            except Refused as exc:
                raise Refused("decorator", f"decorator @{shown}: {exc.why}") from None
            if obj is _PROPERTY_METHOD and not isinstance(decorator, ast.Call):
                kind = "property"
                continue
            if not self.known.is_decorator(obj):
                raise Refused(
                    "decorator", f"decorator @{shown} is not one nnprobe knows to be inert"
                )
            if isinstance(decorator, ast.Call):
                ev = self.evaluator(scope)
                values = [ev.value(a) for a in decorator.args]
                values += [ev.value(k.value) for k in decorator.keywords]
                if any(not is_data(v) for v in values) or any(
                    isinstance(a, ast.Starred) for a in decorator.args
                ):
                    raise Refused("decorator", f"decorator @{shown} is given more than plain data")
            if obj is property or obj is functools.cached_property:
                kind = "property"
        return kind

    def check_function(self, fn: ast.FunctionDef | ast.AsyncFunctionDef, scope: Scope) -> str:
        kind = self.check_decorators(fn.decorator_list, scope)
        self.evaluator(scope).defaults(fn.args)
        return kind

    def check_class(self, cls: ast.ClassDef, scope: Scope) -> ast.ClassDef:
        """The class statement to run (its body filtered), or Refused."""
        self.check_decorators(cls.decorator_list, scope)
        ev = self.evaluator(scope)
        bases: list[type] = []
        for node in cls.bases:
            shown = _short(ast.unparse(node), 40)
            if not _is_name_chain(node):
                raise Refused("base class", f"base class {shown} is not a plain name")
            try:
                value = ev.value(node)
            except Refused as exc:
                raise Refused("base class", f"base class {shown}: {exc.why}") from None
            if not isinstance(value, type):
                raise Refused("base class", f"base class {shown} is not a class")
            bases.append(value)
        meta: Any = None
        for keyword in cls.keywords:
            if keyword.arg != "metaclass":
                raise Refused(
                    "class keyword", f"class keyword {keyword.arg}= goes to __init_subclass__"
                )
            if not _is_name_chain(keyword.value):
                raise Refused("metaclass", "its metaclass is not a plain name")
            meta = ev.value(keyword.value)
            if not self.known.is_metaclass(meta):
                raise Refused(
                    "metaclass", f"metaclass {_qualname(meta)} would run at class creation"
                )
        winner = meta if meta is not None else type
        for base in bases:
            kind = type(base)
            if issubclass(winner, kind):
                continue
            if issubclass(kind, winner):
                winner = kind
            else:
                raise Refused("metaclass", "its bases have conflicting metaclasses")
        if not self.known.is_metaclass(winner):
            raise Refused("metaclass", f"its metaclass {_qualname(winner)} runs at class creation")
        for base in bases:
            for ancestor in base.__mro__:
                if "__init_subclass__" in ancestor.__dict__ and self.is_workspace(ancestor):
                    raise Refused("class hook", f"base {ancestor.__name__} runs __init_subclass__")
        local: dict[str, Any] = {}
        inner = Scope(scope.module, local)
        body: list[ast.stmt] = []
        for stmt in cls.body:
            try:
                body.append(self.class_statement(stmt, inner, local))
            except Refused as refused:
                self.skip(stmt, refused, owner=cls.name)
        if not body:
            body = [ast.copy_location(ast.Pass(), cls)]
        kept = copy.copy(cls)
        kept.body = body
        return kept

    def class_statement(self, stmt: ast.stmt, scope: Scope, local: dict[str, Any]) -> ast.stmt:
        if isinstance(stmt, ast.Pass):
            return stmt
        if isinstance(stmt, ast.Expr):
            if isinstance(stmt.value, ast.Constant):
                return stmt
            raise Refused("call", "a call in a class body, not a definition")
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            if stmt.name in CLASS_HOOKS:
                raise Refused("class hook", f"{stmt.name} runs on its own when classes are made")
            local[stmt.name] = Placeholder(self.check_function(stmt, scope))
            return stmt
        if isinstance(stmt, ast.Assign | ast.AnnAssign):
            self.check_assignment(stmt, scope, module_level=False, local=local)
            return stmt
        if isinstance(stmt, ast.ClassDef):
            kept = self.check_class(stmt, scope)
            local[stmt.name] = Placeholder("class")
            return kept
        kind, what = _STATEMENT_KINDS.get(type(stmt).__name__, ("statement", type(stmt).__name__))
        raise Refused(kind, f"{what} in a class body, not a definition")

    def run_try(self, stmt: ast.Try) -> None:
        handlers: list[tuple[tuple[type[BaseException], ...], ast.ExceptHandler]] = []
        for handler in stmt.handlers:
            if handler.type is None:
                handlers.append(((Exception,), handler))
                continue
            nodes = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
            caught: list[type[BaseException]] = []
            for node in nodes:
                value = self.evaluator().value(node) if _is_name_chain(node) else None
                if not (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and type(value) is type
                ):
                    shown = _short(ast.unparse(node), 30)
                    raise Refused("try", f"its handler for {shown} is not a plain exception class")
                caught.append(value)
            handlers.append((tuple(caught), handler))
        try:
            self.statements(stmt.body)
        except Exception as exc:
            for caught_types, handler in handlers:
                if isinstance(exc, caught_types):
                    if handler.name:
                        self.ns[handler.name] = exc
                    try:
                        self.statements(handler.body)
                    finally:
                        if handler.name:
                            self.ns.pop(handler.name, None)
                    break
            else:
                raise
        else:
            self.statements(stmt.orelse)
        finally:
            self.statements(stmt.finalbody)


def run_definitions(
    namespace: dict[str, Any],
    tree: ast.Module,
    filename: str,
    is_workspace: Callable[[Any], bool],
    skipped: list[Skipped],
) -> None:
    """Run `tree`'s definitions into `namespace` under the contract above."""
    Runner(namespace, filename, is_workspace, skipped).run(tree)


def evaluate(
    expression: str,
    namespace: dict[str, Any],
    is_workspace: Callable[[Any], bool],
    module_call: ModelCheck,
    module_arg: ModelCheck,
) -> Any:
    """The value of a model expression (`nn.Sequential(nn.Linear(4, 2), nn.ReLU())`) checked as a
    constant expression that may also call the classes `module_call` accepts; Refused if not."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise Refused("expression", "is not an expression") from None
    ev = Evaluator(Scope(namespace), Known(), is_workspace, module_call, module_arg)
    return ev.value(tree.body)
