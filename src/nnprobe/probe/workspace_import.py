"""Imports a training script's definitions without running its training.

A model factory (`train.py:Net`) or a probe callable (`train.py:probe_batch`) lives in a script
whose top level usually trains: it loads data, builds the model, loops over epochs and saves
checkpoints. Importing it the ordinary way would run all of that. Instead a filtered copy of the
source is executed: imports, constant assignments (literals, arithmetic, and a few side-effect-free
calls such as `len`, `os.path.join`, `torch.device`), function and class definitions, docstrings
and `if TYPE_CHECKING:` blocks are kept; everything else (the `if __name__ == "__main__":` block,
unguarded loops and calls, assignments computed by any other call) is dropped. The copy is
compiled with the script's real filename, so tracebacks and `inspect.getsource` point at the
user's file, and runs in a fresh module namespace with the script's directory on sys.path only
while it executes.

Modules the script imports (`from models import Net`) are imported normally: they are the user's
libraries, and a library that trains at import time is rare enough not to second-guess.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import sys
import types
from pathlib import Path
from typing import Any

from nnprobe.core import trust


class WorkspaceImportError(Exception):
    """The script cannot be read, parsed or executed, or lacks the named object; the message is
    meant for the user."""


_CONSTANT_NODES = (
    ast.Constant,
    ast.Name,
    ast.Attribute,
    ast.Tuple,
    ast.List,
    ast.Set,
    ast.Dict,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Subscript,
    ast.Slice,
    ast.Starred,
    ast.Load,
    ast.Store,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
    ast.IfExp,
)


# Calls that compute a value and touch nothing, common in the constants a model's constructor
# reads (`DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")`,
# `NUM_CLASSES = len(CLASSES)`, `ROOT = os.path.dirname(__file__)`).
SAFE_CALLS = frozenset(
    {
        "len",
        "int",
        "float",
        "str",
        "bool",
        "tuple",
        "list",
        "dict",
        "set",
        "frozenset",
        "range",
        "min",
        "max",
        "sum",
        "abs",
        "round",
        "sorted",
        "os.path.join",
        "os.path.dirname",
        "os.path.abspath",
        "os.path.basename",
        "os.path.expanduser",
        "os.environ.get",
        "os.getenv",
        "Path",
        "pathlib.Path",
        "math.sqrt",
        "math.log",
        "math.ceil",
        "math.floor",
        "torch.device",
        "torch.cuda.is_available",
        "torch.backends.mps.is_available",
        "TypeVar",
        "typing.TypeVar",
        "namedtuple",
        "collections.namedtuple",
        "logging.getLogger",
    }
)


def _is_constant(expr: ast.AST | None) -> bool:
    """An expression that computes nothing with side effects: literals, names, arithmetic, and
    calls of SAFE_CALLS on such arguments."""
    if expr is None:
        return True
    for node in ast.walk(expr):
        if isinstance(node, ast.Call):
            if _dotted(node.func) not in SAFE_CALLS:
                return False
        elif not isinstance(node, _CONSTANT_NODES + (ast.keyword,)):
            return False
    return True


def _dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value)
        return f"{base}.{expr.attr}" if base else None
    return None


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _keep(stmt: ast.stmt) -> bool:
    if isinstance(
        stmt, ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
    ):
        return True
    if isinstance(stmt, ast.Pass):
        return True
    if isinstance(stmt, ast.Expr):  # a docstring; any other bare expression is a call or noise
        return isinstance(stmt.value, ast.Constant)
    if isinstance(stmt, ast.Assign):
        return _is_constant(stmt.value) and all(_is_constant(t) for t in stmt.targets)
    if isinstance(stmt, ast.AnnAssign):
        return _is_constant(stmt.value) and _is_constant(stmt.target)
    if isinstance(stmt, ast.If):
        return _is_type_checking(stmt.test)
    if isinstance(stmt, ast.Try):
        # `try: import x / except ImportError: x = None`: kept when every branch is keepable.
        bodies = [stmt.body, stmt.orelse, stmt.finalbody, *(h.body for h in stmt.handlers)]
        return all(_keep(s) for body in bodies for s in body)
    return False


def filter_source(tree: ast.Module) -> tuple[ast.Module, list[int]]:
    """The module with only definitions kept, and the line numbers of the dropped statements."""
    kept: list[ast.stmt] = []
    dropped: list[int] = []
    for stmt in tree.body:
        if _keep(stmt):
            kept.append(stmt)
        else:
            dropped.append(stmt.lineno)
    return ast.Module(body=kept, type_ignores=[]), dropped


def import_definitions(script: Path | str) -> types.ModuleType:
    """A module holding the script's definitions, its top-level training code not run."""
    path = Path(script).resolve()
    try:
        trust.require_code_allowed(f"importing {path.name}")
    except trust.UntrustedCode as exc:
        raise WorkspaceImportError(str(exc)) from None
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise WorkspaceImportError(f"cannot read {path.name}: {exc.strerror or exc}") from None
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise WorkspaceImportError(
            f"{path.name} has a syntax error at line {exc.lineno}: {exc.msg}"
        ) from None
    filtered, _ = filter_source(tree)
    code = compile(filtered, str(path), "exec")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    name = f"nnprobe_workspace.{path.stem}_{digest}"
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__dict__["__builtins__"] = __builtins__
    directory = str(path.parent)
    # Registered so dataclasses, inspect.getsource and pickling can find the module by name.
    previous = sys.modules.get(name)
    sys.modules[name] = module
    sys.path.insert(0, directory)
    try:
        exec(code, module.__dict__)
    except BaseException as exc:
        if previous is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = previous
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise WorkspaceImportError(
            f"importing the definitions of {path.name} raised {type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from exc
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(directory)
    return module


def load_object(script: Path | str, name: str) -> Any:
    """`name` (dotted for nested attributes) from the script's definitions."""
    module = import_definitions(script)
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise WorkspaceImportError(
                f"{Path(script).name} defines no {name!r} (outside its training top level)"
            )
        obj = getattr(obj, part)
    return obj


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""
