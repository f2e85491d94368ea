"""Which code builds the network a state_dict belongs to, and building it.

A state_dict is only names and tensors; to probe it nnprobe needs the nn.Module it came from. The
factory is found, in order:

1. `--model train.py:Net` / `--model 'runs/*.pt=train.py:Net'` on the command line, then
   `[tool.nnprobe.models]` in the config (glob -> "file.py:Factory"): first match wins.
2. Discovered statically: the training script, in the checkpoint's folder or a parent up to the
   config root, whose `torch.save(model.state_dict(), f"runs/ckpt_{epoch}.pt")` writes a path
   matching the checkpoint (f-strings, `+`, `os.path.join` and `Path / ...` are followed where
   static); else the only script there that saves the state_dict of a model it can resolve.
   The model is the class or factory function `model` is constructed from, with its constructor
   arguments when they are static (a non-static argument with a default takes the default; one
   without makes the factory unresolved).

Resolution reads source only (no torch); `build_model` and `load_weights` import torch and the
workspace's definitions (see workspace_import.py and definitions.py: imports, constants,
functions and classes only) and run in the probe worker. A discovered factory is called only
when, once imported, it is an nn.Module class defined in the workspace; a configured one is any
callable the user named.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from nnprobe.core import reading
from nnprobe.core.config import Config

if TYPE_CHECKING:
    import torch

    from nnprobe.inspectors.script.context import ScriptContext
    from nnprobe.inspectors.script.models import ModelDef
    from nnprobe.probe.loading import Checkpoint

HOW_TO_CONFIGURE = (
    "pass --model train.py:Net (or --model 'runs/*.pt=train.py:Net'), or configure "
    '[tool.nnprobe.models] "runs/*.pt" = "train.py:Net"'
)
_PASSTHROUGH = frozenset({"to", "cuda", "cpu", "float", "double", "half", "train", "eval"})
_MAX_PARENTS_OUTSIDE_ROOT = 1


class FactoryError(Exception):
    """The factory could not build the model or the weights do not fit it; `message` is for the
    user and `code` the finding to report (NP905)."""

    def __init__(self, message: str, code: str = "NP905") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class FactorySpec:
    """How to build the model: call `name` from `script` (or evaluate `expression` in the script's
    definitions) with `args`/`kwargs`. JSON-serialisable, so it crosses to the worker."""

    script: Path
    name: str | None
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    expression: str | None = None
    origin: str = ""
    notes: tuple[str, ...] = ()
    # Found by discovery rather than named by the user: then only an nn.Module class defined in
    # the workspace is called (build_model).
    discovered: bool = False

    def describe(self) -> str:
        if self.expression is not None:
            text = self.expression if len(self.expression) <= 60 else self.expression[:57] + "..."
            return f"{self.script.name}: {text}"
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"{self.script.name}:{self.name}({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "script": str(self.script),
            "name": self.name,
            "args": [_encode(a) for a in self.args],
            "kwargs": [[k, _encode(v)] for k, v in self.kwargs],
            "expression": self.expression,
            "origin": self.origin,
            "notes": list(self.notes),
            "discovered": self.discovered,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FactorySpec:
        return cls(
            Path(data["script"]),
            data.get("name"),
            tuple(_decode(a) for a in data.get("args", [])),
            tuple((k, _decode(v)) for k, v in data.get("kwargs", [])),
            data.get("expression"),
            data.get("origin", ""),
            tuple(data.get("notes", [])),
            bool(data.get("discovered", False)),
        )


def _encode(value: Any) -> Any:
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_decode(v) for v in value["__tuple__"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


@dataclass
class Resolution:
    """A factory (or why there is none), and the script and model definition it was read from,
    which map runtime findings back to source lines."""

    spec: FactorySpec | None
    reason: str = ""
    ctx: ScriptContext | None = None
    model: ModelDef | None = None
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------- scripts

_CONTEXTS: dict[Path, tuple[int, ScriptContext | None]] = {}


def script_context(path: Path) -> ScriptContext | None:
    """The parsed script (cached per file version); None when it cannot be read or parsed."""
    import warnings

    from nnprobe.inspectors.script.context import ScriptContext
    from nnprobe.inspectors.script.handler import Unreadable, decode

    path = path.resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    cached = _CONTEXTS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    ctx: ScriptContext | None
    try:
        text = decode(reading.read_bytes(path, what="script", limit=reading.LIMITS["script"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            tree = ast.parse(text, filename=str(path))
        ctx = ScriptContext(str(path), text, tree)
    except (
        OSError,
        Unreadable,
        reading.Unreadable,
        SyntaxError,
        ValueError,
        RecursionError,
        MemoryError,
    ):
        ctx = None
    _CONTEXTS[path] = (stamp, ctx)
    return ctx


# ---------------------------------------------------------------------------------- resolution


def resolve_factory(checkpoint: Path, config: Config) -> Resolution:
    """The factory for the state_dict at `checkpoint`: configured first, else discovered."""
    for entry in config.models:
        if entry.matches(checkpoint):
            script = entry.script.resolve()
            where = entry.origin if entry.pattern is None else f"{entry.origin} {entry.pattern!r}"
            if not script.is_file():
                return Resolution(None, f"{where} names {entry.factory}, but {script} is missing")
            ctx = script_context(script)
            spec = FactorySpec(script, entry.name, origin=f"from {where}")
            model = _model_named(ctx, entry.name) if ctx is not None else None
            return Resolution(spec, ctx=ctx, model=model)
    return discover(checkpoint, config.root)


def _model_named(ctx: ScriptContext, name: str) -> ModelDef | None:
    models = ctx.models
    cls = models.module_classes.get(name)
    if cls is not None:
        return models.for_class(cls)
    for fn in ctx.functions.get(name, []):
        if ctx.enclosing_class(fn) is not None:
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and node.value is not None:
                model = models.for_expr(node.value)
                if model is not None:
                    return model
    return None


@dataclass
class _Save:
    ctx: ScriptContext
    script: Path
    call: ast.Call
    receiver: ast.expr
    pattern: str | None


def search_dirs(checkpoint: Path, root: Path) -> list[Path]:
    """The checkpoint's folder and its parents up to the config root (one parent when outside)."""
    folder = checkpoint.resolve().parent
    root = root.resolve()
    dirs = [folder]
    if folder == root or root in folder.parents:
        for parent in folder.parents:
            if parent == root or root in parent.parents:
                dirs.append(parent)
            else:
                break
    else:
        dirs.extend(list(folder.parents)[:_MAX_PARENTS_OUTSIDE_ROOT])
    return dirs


def discover(checkpoint: Path, root: Path) -> Resolution:
    dirs = search_dirs(checkpoint, root)
    target = PurePosixPath(checkpoint.resolve()).as_posix()
    any_save: list[_Save] = []
    failures: list[str] = []
    for directory in dirs:
        matched: list[_Save] = []
        for save in _saves_in(directory, root):
            any_save.append(save)
            if save.pattern is not None and _path_matches(save.pattern, target, save.script):
                matched.append(save)
        for save in matched:
            resolution = _from_save(save, f"it saves {save.pattern!r}")
            if resolution.spec is not None:
                return resolution
            failures.append(resolution.reason)
        if failures:
            return Resolution(None, failures[0])
    resolved = [r for r in (_from_save(s, "") for s in any_save) if r.spec is not None]
    scripts = {r.spec.script for r in resolved if r.spec is not None}
    if len(scripts) == 1:
        only = resolved[0]
        assert only.spec is not None
        origin = (
            f"discovered in {only.spec.script.name}, the only script near the checkpoint that "
            "saves a state_dict (its save path does not say this file)"
        )
        return Resolution(replace(only.spec, origin=origin), ctx=only.ctx, model=only.model)
    searched = _describe_dirs(dirs)
    if len(scripts) > 1:
        names = ", ".join(sorted(s.name for s in scripts))
        reason = (
            f"several scripts save state_dicts ({names}) and none names this file; "
            f"{HOW_TO_CONFIGURE}"
        )
    elif any_save:
        reason = (
            f"{any_save[0].script.name} saves a state_dict, but the model it saves could not be "
            f"resolved statically; {HOW_TO_CONFIGURE}"
        )
    else:
        reason = (
            f"no training script that saves this state_dict was found in {searched}; "
            f"{HOW_TO_CONFIGURE}"
        )
    return Resolution(None, reason)


def _describe_dirs(dirs: list[Path]) -> str:
    if len(dirs) == 1:
        return f"{_short(dirs[0])}/"
    return f"{_short(dirs[0])}/ and its parents up to {_short(dirs[-1])}/"


def _short(path: Path) -> str:
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    except ValueError:
        return str(path)


def _saves_in(directory: Path, root: Path) -> list[_Save]:
    saves: list[_Save] = []
    try:
        scripts = sorted(p for p in directory.iterdir() if p.suffix == ".py" and p.is_file())
    except OSError:
        return saves
    for script in scripts:
        try:
            head = reading.read_bytes(
                script, what="script", limit=reading.LIMITS["script"], roots=[root]
            )
        except reading.Unreadable:
            continue
        if b"save" not in head or b"state_dict" not in head:
            continue
        ctx = script_context(script)
        if ctx is None:
            continue
        for call, _ in ctx.calls_to("torch.save"):
            obj = ctx.argument(call, "obj", 0)
            receiver = _state_dict_receiver(ctx, obj) if obj is not None else None
            if receiver is None:
                continue
            dest = ctx.argument(call, "f", 1)
            pattern = path_pattern(ctx, dest) if dest is not None else None
            saves.append(_Save(ctx, script.resolve(), call, receiver, pattern))
    return saves


def _state_dict_receiver(ctx: ScriptContext, obj: ast.expr, depth: int = 4) -> ast.expr | None:
    """`model` in `model.state_dict()`, also inside a bundle dict `{"model": ...}`."""
    if depth == 0:
        return None
    obj = ctx.resolve(obj)
    if (
        isinstance(obj, ast.Call)
        and isinstance(obj.func, ast.Attribute)
        and obj.func.attr == "state_dict"
    ):
        return obj.func.value
    if isinstance(obj, ast.Call) and len(obj.args) == 1 and not obj.keywords:
        name = ctx.call_name(obj) or ""
        if name in ("copy.deepcopy", "dict", "collections.OrderedDict"):
            return _state_dict_receiver(ctx, obj.args[0], depth - 1)
    if isinstance(obj, ast.Dict):
        for key, value in zip(obj.keys, obj.values, strict=True):
            found = _state_dict_receiver(ctx, value, depth - 1)
            if found is not None and not _is_optimizer_key(key):
                return found
    return None


def _is_optimizer_key(key: ast.expr | None) -> bool:
    return isinstance(key, ast.Constant) and "optim" in str(key.value)


# ---------------------------------------------------------------------------------- save paths


def path_pattern(ctx: ScriptContext, expr: ast.expr, depth: int = 8) -> str | None:
    """The glob (`*` for what is not static) of the path a save writes, or None when unknown."""
    from nnprobe.inspectors.script.values import UNKNOWN

    if depth == 0:
        return None
    value = ctx.value(expr)
    if isinstance(value, str):
        return _escape(value)
    if isinstance(expr, ast.Name):
        resolved = ctx.resolve(expr)
        return None if resolved is expr else path_pattern(ctx, resolved, depth - 1)
    if isinstance(expr, ast.JoinedStr):
        parts = []
        for part in expr.values:
            if isinstance(part, ast.Constant):
                parts.append(_escape(str(part.value)))
            elif isinstance(part, ast.FormattedValue):
                inner = ctx.value(part.value)
                if inner is UNKNOWN or part.format_spec is not None or part.conversion != -1:
                    parts.append("*")
                else:
                    parts.append(_escape(str(inner)))
        return _squash("".join(parts))
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Div | ast.Add):
        left = path_pattern(ctx, expr.left, depth - 1)
        right = path_pattern(ctx, expr.right, depth - 1)
        if isinstance(expr.op, ast.Div):
            return f"{left or '*'}/{right or '*'}" if right is not None else None
        return _squash(f"{left or '*'}{right or '*'}")
    if isinstance(expr, ast.Call):
        name = ctx.call_name(expr) or ""
        if name in ("os.path.join", "posixpath.join") and expr.args:
            parts = [path_pattern(ctx, a, depth - 1) or "*" for a in expr.args]
            return "/".join(parts)
        if name in ("pathlib.Path", "Path", "str", "os.fspath", "pathlib.PurePath") and expr.args:
            return path_pattern(ctx, expr.args[0], depth - 1)
        if isinstance(expr.func, ast.Attribute) and expr.func.attr == "format":
            base = ctx.value(expr.func.value)
            if isinstance(base, str):
                return _squash(re.sub(r"\*|\{[^{}]*\}", "*", _escape_braces(base)))
    return None


def _escape(text: str) -> str:
    return text.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


def _escape_braces(text: str) -> str:
    return text.replace("[", "[[]").replace("?", "[?]")


def _squash(pattern: str) -> str:
    return re.sub(r"\*+", "*", pattern)


def _glob_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
        elif ch == "[" and pattern.find("]", i + 2) != -1:
            end = pattern.index("]", i + 2)
            out.append(re.escape(pattern[i + 1 : end]))
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _path_matches(pattern: str, target: str, script: Path) -> bool:
    """Whether a save path pattern names the checkpoint: an absolute pattern as is, a relative one
    as the tail of the checkpoint's path (it was relative to wherever the script ran)."""
    pattern = pattern.replace("\\", "/")
    while pattern.startswith("./"):
        pattern = pattern[2:]
    regex = _glob_regex(pattern)
    if pattern.startswith("/"):
        return re.fullmatch(regex, target) is not None
    return re.search(r"(?:^|/)" + regex + r"\Z", target) is not None


# ---------------------------------------------------------------------------------- the model


def _from_save(save: _Save, why: str) -> Resolution:
    ctx = save.ctx
    model = ctx.models.the_model(save.receiver)
    call = _constructor(ctx, save.receiver)
    if call is None and model is not None and model.kind == "class":
        return _class_without_call(save, model, why)
    if call is None:
        return Resolution(
            None,
            f"{save.script.name} saves {ctx.source(save.receiver)}.state_dict(), but where that "
            f"model is built could not be followed statically; {HOW_TO_CONFIGURE}",
        )
    origin = f"discovered in {save.script.name}" + (f" ({why})" if why else "")
    spec, reason = _spec_for_call(ctx, save.script, call, origin)
    if spec is None:
        return Resolution(None, reason, ctx=ctx, model=model)
    return Resolution(spec, ctx=ctx, model=model)


def _class_without_call(save: _Save, model: ModelDef, why: str) -> Resolution:
    """`def train(model): ... torch.save(model.state_dict())` with one module class: the only
    construction of it in the file, else its defaults."""
    ctx = save.ctx
    calls = [c for c in ctx.calls if isinstance(c.func, ast.Name) and c.func.id == model.name]
    origin = f"discovered in {save.script.name}" + (f" ({why})" if why else "")
    if len(calls) == 1:
        spec, reason = _spec_for_call(ctx, save.script, calls[0], origin)
    else:
        fake = ast.Call(func=ast.Name(model.name, ast.Load()), args=[], keywords=[])
        spec, reason = _spec_for_call(ctx, save.script, fake, origin)
    return Resolution(spec, reason, ctx=ctx, model=model)


def _constructor(ctx: ScriptContext, expr: ast.expr) -> ast.Call | None:
    for _ in range(8):
        expr = ctx.resolve(expr)
        if (
            isinstance(expr, ast.Call)
            and isinstance(expr.func, ast.Attribute)
            and expr.func.attr in _PASSTHROUGH
        ):
            expr = expr.func.value
            continue
        break
    return expr if isinstance(expr, ast.Call) else None


def _spec_for_call(
    ctx: ScriptContext, script: Path, call: ast.Call, origin: str
) -> tuple[FactorySpec | None, str]:
    from nnprobe.inspectors.script.models import NN

    name = _dotted(call.func)
    if name is None or (ctx.call_name(call) or "").startswith(NN):
        # `model = nn.Sequential(...)` at the top level: evaluate that expression in the
        # script's definitions.
        source = ctx.source(call)
        if not source:
            return None, f"cannot read the expression that builds the model in {script.name}"
        return FactorySpec(script, None, expression=source, origin=origin, discovered=True), ""
    definition = _definition(ctx, name)
    params = _parameters(definition) if definition is not None else None
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    notes: list[str] = []
    if ctx.has_kwargs_splat(call):
        return None, (
            f"{script.name} builds {name}(...) with * or ** arguments, which are not static; "
            f"{HOW_TO_CONFIGURE}"
        )
    skipped = False  # a positional argument was dropped: later ones must go by keyword
    for index, arg in enumerate(call.args):
        param = params[index][0] if params is not None and index < len(params) else None
        value = ctx.value(arg)
        if _static(value) and not skipped:
            args.append(value)
        elif _static(value) and param is not None:
            kwargs[param] = value
        elif not _static(value) and _has_default(params, param):
            notes.append(f"{param}: not static ({ctx.source(arg)}), the default is used")
            skipped = True
        else:
            label = param or f"argument {index + 1}"
            return None, (
                f"{script.name}: {name}(...) gets {label} = {ctx.source(arg)}, which is not "
                f"static; {HOW_TO_CONFIGURE}"
            )
    for keyword in call.keywords:
        assert keyword.arg is not None
        value = ctx.value(keyword.value)
        if _static(value):
            kwargs[keyword.arg] = value
        elif _has_default(params, keyword.arg):
            notes.append(
                f"{keyword.arg}: not static ({ctx.source(keyword.value)}), the default is used"
            )
        else:
            return None, (
                f"{script.name}: {name}(...) gets {keyword.arg} = {ctx.source(keyword.value)}, "
                f"which is not static; {HOW_TO_CONFIGURE}"
            )
    if params is not None:
        given = set(kwargs) | {p for p, _ in params[: len(args)]}
        dropped = {n.split(":")[0] for n in notes}
        for param, has_default in params:
            if not has_default and param not in given and param not in dropped:
                return None, (
                    f"{script.name}: {name}(...) needs the argument {param!r}, which is not given "
                    f"statically; {HOW_TO_CONFIGURE}"
                )
    spec = FactorySpec(
        script,
        name,
        tuple(args),
        tuple(kwargs.items()),
        origin=origin,
        notes=tuple(notes),
        discovered=True,
    )
    return spec, ""


def _has_default(params: list[tuple[str, bool]] | None, param: str | None) -> bool:
    return params is not None and any(p == param and d for p, d in params)


def _static(value: Any) -> bool:
    from nnprobe.inspectors.script.values import UNKNOWN

    if value is UNKNOWN:
        return False
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, tuple | list):
        return all(_static(v) for v in value)
    return False


def _dotted(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if isinstance(expr, ast.Attribute):
        base = _dotted(expr.value)
        return f"{base}.{expr.attr}" if base else None
    return None


def _definition(ctx: ScriptContext, name: str) -> ast.ClassDef | ast.FunctionDef | None:
    cls = ctx.classes.get(name)
    if cls is not None:
        return cls
    for fn in ctx.functions.get(name, []):
        if isinstance(fn, ast.FunctionDef) and ctx.enclosing_class(fn) is None:
            return fn
    return None


def _parameters(definition: ast.ClassDef | ast.FunctionDef) -> list[tuple[str, bool]] | None:
    """(name, has a default) of the callable's parameters, `self` dropped; None if unknown."""
    fn: ast.FunctionDef | None
    if isinstance(definition, ast.ClassDef):
        fn = next(
            (s for s in definition.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
            None,
        )
        if fn is None:
            return [] if not definition.bases or _only_module_bases(definition) else None
    else:
        fn = definition
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults = [False] * (len(positional) - len(a.defaults)) + [True] * len(a.defaults)
    params = list(zip((p.arg for p in positional), defaults, strict=True))
    if isinstance(definition, ast.ClassDef) and params:
        params = params[1:]
    params.extend((p.arg, d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True))
    return params


def _only_module_bases(cls: ast.ClassDef) -> bool:
    return all(_dotted(b) in ("nn.Module", "torch.nn.Module", "Module") for b in cls.bases)


# ---------------------------------------------------------------------------------- building


def build_model(spec: FactorySpec) -> torch.nn.Module:
    """Import the script's definitions (not its training) and call the factory.

    A discovered factory is called only when it is an nn.Module class defined in the workspace
    (the script or a module it imports from beside it): `model = subprocess.Popen([...])` or
    `model = train(data)` in a script is never called. A discovered model expression
    (`model = nn.Sequential(...)`) is evaluated only when it calls torch.nn classes and the
    workspace's nn.Module classes with plain data. A configured factory (`--model
    train.py:make`, `[tool.nnprobe.models]`) is the user's choice: any callable the script
    defines or imports, called without arguments."""
    import torch

    from nnprobe.probe.workspace_import import Definitions, WorkspaceImportError, definitions

    defs: Definitions | None = None
    try:
        defs = definitions(spec.script)
        if spec.expression is not None:
            model = defs.evaluate_model(spec.expression)
        else:
            assert spec.name is not None
            factory = defs.lookup(spec.name)
            if spec.discovered:
                _check_discovered(factory, spec, defs.is_workspace(factory))
            model = defs.call(factory, *spec.args, **dict(spec.kwargs))
    except FactoryError:
        raise
    except WorkspaceImportError as exc:
        raise FactoryError(f"cannot build the model from {spec.describe()}: {exc}") from exc
    except Exception as exc:
        raise FactoryError(
            f"building the model with {spec.describe()} raised {type(exc).__name__}: "
            f"{_first_line(exc)}{defs.explain(exc) if defs is not None else ''}"
        ) from exc
    if isinstance(model, tuple) and model and isinstance(model[0], torch.nn.Module):
        model = model[0]
    if not isinstance(model, torch.nn.Module):
        raise FactoryError(f"{spec.describe()} returned {type(model).__name__!r}, not an nn.Module")
    return model


def _check_discovered(factory: Any, spec: FactorySpec, in_workspace: bool) -> None:
    import torch

    if isinstance(factory, type) and issubclass(factory, torch.nn.Module) and in_workspace:
        return
    hint = f"If {spec.name}() builds the model, name it: --model {spec.script.name}:{spec.name}"
    if isinstance(factory, type) and in_workspace:
        what = "a class that is not an nn.Module"
    elif in_workspace:
        what = "a function (calling it could train)"
    else:
        home = getattr(factory, "__module__", None) or type(factory).__module__
        name = getattr(factory, "__qualname__", spec.name)
        what, hint = f"{home}.{name}, not defined in the workspace", "It is not called."
    raise FactoryError(
        f"{spec.script.name} builds its model with {spec.name}(...), which is {what}; nnprobe "
        f"calls only nn.Module classes of the workspace it discovers. {hint}"
    )


def load_weights(module: torch.nn.Module, checkpoint: Checkpoint, spec: FactorySpec) -> None:
    """Copy the checkpoint's tensors into the module, strictly: every key must match."""
    import torch

    state = {name: torch.from_numpy(array.copy()) for name, array in checkpoint.tensors.items()}
    state.update({name: torch.from_numpy(a.copy()) for name, a in checkpoint.other.items()})
    expected = set(module.state_dict())
    if checkpoint.prefix and not expected & set(state):
        # The loader strips wrapper prefixes (`model.` of a LightningModule); a factory that
        # builds the wrapper itself wants them back.
        prefixed = {checkpoint.prefix + name: tensor for name, tensor in state.items()}
        if expected & set(prefixed):
            state = prefixed
    missing = sorted(expected - set(state))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing from the checkpoint: {_keys(missing)}")
        if unexpected:
            parts.append(f"not in the model: {_keys(unexpected)}")
        raise FactoryError(
            f"wrong architecture for the weights: the state_dict does not fit "
            f"{spec.describe()} ({spec.origin}); {'; '.join(parts)}"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        sizes = re.findall(r"size mismatch for ([\w.]+)", str(exc))
        detail = f"shapes differ for {_keys(sizes)}" if sizes else _first_line(exc)
        raise FactoryError(
            f"wrong architecture for the weights: the state_dict does not fit "
            f"{spec.describe()} ({spec.origin}); {detail}"
        ) from exc


def _keys(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""
