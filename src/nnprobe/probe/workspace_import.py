"""Imports a training script's definitions without running its training, nor anything else.

A model factory (`train.py:Net`) or a probe callable (`train.py:probe_batch`) lives in a script
whose top level usually trains: it loads data, builds the model, loops over epochs and saves
checkpoints. Importing it the ordinary way would run all of that. Instead each top-level
statement is checked and only definitions run (imports, constants, functions, classes whose
decorators, bases, metaclass and default arguments run no code nnprobe does not know): the
exact contract is in nnprobe.probe.definitions. The statements run are compiled with the
script's real filename, so tracebacks and `inspect.getsource` point at the user's file.

Workspace modules the script imports (`from models import Net`, `from .layers import Block` in
a package, `import utils` inside a function the factory calls) get the same treatment: while
nnprobe imports or calls workspace code, a finder first on `sys.meta_path` resolves modules
from the script's import folders (its own folder, and the folder above its package when it is
in one, as `python train.py` or `python -m pkg.train` would) and loads their definitions only.
Compiled modules there (`.so`, `.pyc` without source) are refused. Packages installed in the
interpreter, including an editable install of the project, are imported as Python imports them:
they are libraries. Code that imports a workspace module later, outside nnprobe's calls (a
`forward` that imports one while the probe runs), finds none: the folders are not on sys.path.

Each call of `definitions()` starts from fresh copies of the workspace modules, so a long-lived
worker sees edits; the statements skipped are kept (`Definitions.skipped`) to explain a factory
that cannot be built.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnprobe.core import reading, trust
from nnprobe.probe.definitions import Refused, Skipped, evaluate, run_definitions


class WorkspaceImportError(Exception):
    """The script cannot be read, parsed or executed, or lacks the named object; the message is
    meant for the user."""


@dataclass
class _Session:
    """The workspace modules one `definitions()` call loaded, and what it skipped in them."""

    roots: list[Path]
    modules: dict[str, types.ModuleType] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    sources: dict[str, tuple[Path, bytes]] = field(default_factory=dict)  # name -> file, sha1

    def is_workspace(self, obj: Any) -> bool:
        if isinstance(obj, types.ModuleType):
            return self.modules.get(obj.__name__) is obj
        if isinstance(obj, type):
            name = obj.__dict__.get("__module__")
        elif isinstance(obj, types.FunctionType | types.MethodType):
            name = getattr(obj, "__module__", None)
        else:
            return False
        return isinstance(name, str) and name in self.modules

    def inside(self, location: str | Path) -> bool:
        path = Path(location)
        return any(path == root or root in path.parents for root in self.roots)

    def load(self, module: types.ModuleType, path: Path) -> None:
        """Run the definitions of the file at `path` into `module`."""
        self.modules[module.__name__] = module
        try:
            source = reading.read_bytes(
                path, what="script", limit=reading.LIMITS["script"], roots=self.roots
            )
        except reading.Unreadable as exc:
            raise ImportError(exc.message, name=module.__name__) from None
        self.sources[module.__name__] = (path, hashlib.sha1(source).digest())
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as exc:
            error = SyntaxError(f"{path.name} has a syntax error at line {exc.lineno}: {exc.msg}")
            error.nnprobe_where = f"{path.name}:{exc.lineno}"  # type: ignore[attr-defined]
            raise error from None
        except (ValueError, RecursionError, MemoryError) as exc:
            raise ImportError(f"cannot parse {path.name}: {exc}", name=module.__name__) from None
        run_definitions(module.__dict__, tree, str(path), self.is_workspace, self.skipped)


_ACTIVE: list[_Session] = []
# The workspace modules past calls left in sys.modules: reused by the next call while its import
# folders are the same and no source changed (the model and its probe callable share them),
# else dropped so the next import reads the files again.
_KEPT = _Session([])


def _unchanged(path: Path, digest: bytes, roots: list[Path]) -> bool:
    try:
        data = reading.read_bytes(path, what="script", limit=reading.LIMITS["script"], roots=roots)
    except reading.Unreadable:
        return False
    return hashlib.sha1(data).digest() == digest


def _reuse_or_forget(session: _Session) -> None:
    kept = _KEPT
    live = all(sys.modules.get(name) is module for name, module in kept.modules.items())
    if (
        kept.modules
        and live
        and kept.roots == session.roots
        and all(_unchanged(p, d, kept.roots) for p, d in kept.sources.values())
    ):
        session.modules.update(kept.modules)
        session.sources.update(kept.sources)
        session.skipped.extend(s for s in kept.skipped if s.module in kept.modules)
        return
    _forget()


def _forget() -> None:
    for name, module in _KEPT.modules.items():
        if sys.modules.get(name) is module:
            del sys.modules[name]
    _KEPT.modules.clear()
    _KEPT.sources.clear()
    _KEPT.skipped.clear()


def _keep(session: _Session) -> None:
    """Remember the session's importable modules (not the script run under its own name)."""
    if _KEPT.roots != session.roots:
        _forget()
    _KEPT.roots = list(session.roots)
    for name, module in session.modules.items():
        if name.startswith(_SCRIPT_PREFIX) or sys.modules.get(name) is not module:
            continue
        _KEPT.modules[name] = module
        if name in session.sources:
            _KEPT.sources[name] = session.sources[name]
    _KEPT.skipped = [s for s in session.skipped if s.module in _KEPT.modules]


_SCRIPT_PREFIX = "nnprobe_workspace."


class _Loader(importlib.abc.Loader):
    def __init__(self, session: _Session, path: Path) -> None:
        self.session = session
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        self.session.load(module, self.path)


_COMPILED = tuple(importlib.machinery.EXTENSION_SUFFIXES) + tuple(
    importlib.machinery.BYTECODE_SUFFIXES
)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds modules in the active session's import folders (and below its packages)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if not _ACTIVE:
            return None
        session = _ACTIVE[-1]
        if path is None:
            locations = list(session.roots)
        else:
            locations = [Path(p) for p in path if session.inside(p)]
        name = fullname.rpartition(".")[2]
        for location in locations:
            package = location / name
            init = package / "__init__.py"
            if init.is_file():
                return importlib.util.spec_from_file_location(
                    fullname,
                    init,
                    loader=_Loader(session, init),
                    submodule_search_locations=[str(package)],
                )
            source = location / f"{name}.py"
            if source.is_file():
                return importlib.util.spec_from_file_location(
                    fullname, source, loader=_Loader(session, source)
                )
            for suffix in _COMPILED:
                compiled = location / f"{name}{suffix}"
                if compiled.exists():
                    raise ImportError(
                        f"{compiled.name} in the workspace is compiled code, which a "
                        "definitions-only import does not load",
                        name=fullname,
                    )
        for location in locations:
            folder = location / name
            if folder.is_dir():
                # A namespace package only if nothing installed has the name, as in Python.
                if path is None and importlib.machinery.PathFinder.find_spec(fullname) is not None:
                    return None
                spec = importlib.machinery.ModuleSpec(fullname, None, is_package=True)
                spec.submodule_search_locations = [str(folder)]
                return spec
        return None


_FINDER = _Finder()


@contextlib.contextmanager
def _active(session: _Session) -> Iterator[None]:
    if not _ACTIVE:
        sys.meta_path.insert(0, _FINDER)
    _ACTIVE.append(session)
    try:
        yield
    finally:
        _ACTIVE.remove(session)
        if not _ACTIVE:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(_FINDER)
            _keep(session)


def _import_root(path: Path) -> tuple[Path, str | None]:
    """The folder Python would import the script's package from, and the script's dotted name
    there (None when the script is not inside a package)."""
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return path.parent, None
    if not all(part.isidentifier() for part in parts):
        return path.parent, None
    return folder, ".".join(parts)


@dataclass
class Definitions:
    """A script's definitions (its module) and the session that loaded them."""

    module: types.ModuleType
    session: _Session

    @property
    def skipped(self) -> list[Skipped]:
        return self.session.skipped

    def is_workspace(self, obj: Any) -> bool:
        """Whether `obj` (a class, function or module) was defined by the workspace's code."""
        return self.session.is_workspace(obj)

    def lookup(self, name: str) -> Any:
        obj: Any = self.module
        for index, part in enumerate(name.split(".")):
            found = (
                obj.__dict__.get(part, _MISSING)
                if isinstance(obj, types.ModuleType) and self.is_workspace(obj)
                else getattr(obj, part, _MISSING)
            )
            if found is _MISSING and index == 0:
                found = builtins.__dict__.get(part, _MISSING)
            if found is _MISSING:
                why = self.why_missing(part)
                raise WorkspaceImportError(
                    f"{Path(str(self.module.__file__)).name} defines no {name!r} (outside its "
                    f"training top level){why}"
                )
            obj = found
        return obj

    def call(self, obj: Any, *args: Any, **kwargs: Any) -> Any:
        """`obj(*args, **kwargs)` with workspace imports it makes definitions-only too."""
        with _active(self.session):
            return obj(*args, **kwargs)

    def evaluate_model(self, expression: str) -> Any:
        """The module a model expression (`nn.Sequential(...)`) builds, refused unless it calls
        only torch.nn classes and the workspace's nn.Module classes, with plain data."""
        import torch

        def module_class(obj: Any) -> bool:
            if not (isinstance(obj, type) and issubclass(obj, torch.nn.Module)):
                return False
            home = obj.__dict__.get("__module__", "")
            return self.is_workspace(obj) or (isinstance(home, str) and home.startswith("torch.nn"))

        def module_arg(obj: Any) -> bool:
            return isinstance(obj, torch.nn.Module) or module_class(obj)

        try:
            with _active(self.session):
                return evaluate(
                    expression, self.module.__dict__, self.is_workspace, module_class, module_arg
                )
        except Refused as exc:
            raise WorkspaceImportError(
                f"the expression that builds the model {exc.why}, which nnprobe does not run"
            ) from None

    def why_missing(self, name: str | None) -> str:
        """`: line 12 `NAME = ...` was skipped (why)` when a skipped statement binds `name`."""
        if not name:
            return ""
        for skipped in self.skipped:
            if name in skipped.binds:
                return (
                    f"; {skipped.describe()} was not run: a definitions-only import runs "
                    "no such statement"
                )
        return ""

    def explain(self, exc: BaseException) -> str:
        """Why a NameError/AttributeError raised by workspace code may come from a skip."""
        if isinstance(exc, NameError | AttributeError):
            return self.why_missing(getattr(exc, "name", None))
        return ""


_MISSING = object()


def definitions(script: Path | str) -> Definitions:
    """The script's definitions, its top-level training code and everything else not run."""
    path = Path(script).resolve()
    try:
        trust.require_code_allowed(f"importing {path.name}")
    except trust.UntrustedCode as exc:
        raise WorkspaceImportError(str(exc)) from None
    root, dotted = _import_root(path)
    # The script's own folder too: `python scripts/train.py` imports its siblings from there even
    # when the folder is a package.
    session = _Session([root] if root == path.parent else [root, path.parent])
    if not _ACTIVE:
        _reuse_or_forget(session)
    try:
        with _active(session):
            if dotted is None:
                digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
                name = f"{_SCRIPT_PREFIX}{path.stem}_{digest}"
                module = types.ModuleType(name)
                module.__file__ = str(path)
                # Registered so dataclasses, inspect.getsource and pickling find it by name.
                sys.modules[name] = module
                try:
                    session.load(module, path)
                except BaseException:
                    sys.modules.pop(name, None)
                    raise
            else:
                module = importlib.import_module(dotted)
                if not session.is_workspace(module):
                    raise WorkspaceImportError(
                        f"{path.name}'s package name {dotted.split('.')[0]!r} is taken by a module "
                        "nnprobe has already imported; name the factory from a script outside it"
                    )
    except WorkspaceImportError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        where = getattr(exc, "nnprobe_where", "")
        if isinstance(exc, SyntaxError) and str(exc).startswith(path.name):
            raise WorkspaceImportError(str(exc)) from None
        raise WorkspaceImportError(
            f"importing the definitions of {path.name} raised {type(exc).__name__}: "
            f"{_first_line(exc)}" + (f" (at {where})" if where else "")
        ) from exc
    return Definitions(module, session)


def import_definitions(script: Path | str) -> types.ModuleType:
    """A module holding the script's definitions, its top-level training code not run."""
    return definitions(script).module


def load_object(script: Path | str, name: str) -> Any:
    """`name` (dotted for nested attributes) from the script's definitions."""
    return definitions(script).lookup(name)


def call_object(script: Path | str, name: str) -> Any:
    """Call `name` from the script's definitions without arguments (a probe callable), its
    own workspace imports definitions-only too."""
    defs = definitions(script)
    return defs.call(defs.lookup(name))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""
