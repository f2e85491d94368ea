"""nn.Module -> ONNX, once per architecture, cached on disk; new checkpoints only re-bind weights.

Exporting costs 0.1-2 s with the TorchScript-based exporter (`dynamo=False`) and several seconds
with the dynamo one, so the TorchScript exporter goes first and dynamo is the fallback. Three
details make re-binding by name sound:

- constant folding is off, so no initializer is a weight transformed at export time (a transposed
  MatMul weight, an LSTM's re-ordered gates, a Conv with its BatchNorm folded in): ONNX Runtime
  folds those itself when the session starts, from whatever weights are bound;
- the exported copy's floating-point parameters and buffers get a tiny distinct jitter first,
  because the exporter merges initializers whose *values* are equal (a fresh BatchNorm's weight and
  running_var are both ones), which would tie them in the graph for every later checkpoint;
- a trace that depended on the data (`if x.sum() > 0:`, a TracerWarning) or that disagrees with the
  eager forward at another batch size is refused, not cached.

The cache key is a content hash of everything the graph depends on except the weights' values:
the source of every user module class and of the functions and plain constants their methods read
from module globals, the module tree (its repr with layer sizes) and each module's plain
attributes, parameter and buffer names, shapes and dtypes, the caller's description of the
constructor arguments, the input signature, the exporter and the Python, torch, onnx (and, for
dynamo, onnxscript) versions. Entries live in nnprobe.probe.disk_cache (one checksummed file,
written atomically); a hit is also checked against the module before use.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import inspect
import io
import logging
import os
import re
import sys
import time
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnprobe.probe.disk_cache import discard, read_entry, write_entry
from nnprobe.probe.memory import out_of_memory

if TYPE_CHECKING:
    import onnx
    import torch

FORMAT_VERSION = 2
OPSET = 17
EXPORTERS = ("torchscript", "dynamo")


class ExportError(Exception):
    """The model could not be exported faithfully; the message says why (it goes into NP903)."""


@dataclass
class ExportedGraph:
    """An exported architecture: the graph with parameter initializers to be bound by name."""

    model: onnx.ModelProto
    key: str
    exporter: str
    cache_hit: bool
    export_seconds: float
    bound_names: list[str] = field(default_factory=list)
    module_names: list[str] = field(default_factory=list)


def default_cache_dir() -> Path:
    """NNPROBE_CACHE_DIR, else the platform's per-user cache directory plus `nnprobe`."""
    configured = os.environ.get("NNPROBE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "nnprobe"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "nnprobe" / "Cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nnprobe"


@functools.lru_cache(maxsize=512)
def _class_source(cls: type) -> str:
    """A class's source (read once per class object: inspect parses the whole file each time,
    tens of milliseconds per probe; an edited class is a new class object once re-imported)."""
    try:
        return inspect.getsource(cls)
    except (OSError, TypeError):
        return f"{cls.__module__}.{cls.__qualname__}"


_PLAIN = (bool, int, float, str, bytes, type(None))


def _plain(value: object) -> bool:
    if isinstance(value, tuple | list):
        return len(value) <= 64 and all(_plain(v) for v in value)
    return isinstance(value, _PLAIN)


@functools.lru_cache(maxsize=512)
def _code_globals(cls: type) -> tuple[tuple[str, str], ...]:
    """What a user class's methods read from module globals that can change the graph: the source
    of the functions they call (recursively, torch's own excepted) and plain constants."""
    found: dict[str, str] = {}
    seen: set[int] = set()

    def visit(code: types.CodeType, space: dict[str, Any]) -> None:
        if id(code) in seen:
            return
        seen.add(id(code))
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                visit(const, space)
        for name in code.co_names:
            if name in found or name not in space:
                continue
            value = space[name]
            if isinstance(value, types.FunctionType):
                if str(getattr(value, "__module__", "")).startswith("torch"):
                    continue
                try:
                    found[name] = inspect.getsource(value)
                except (OSError, TypeError):
                    found[name] = f"{value.__module__}.{value.__qualname__}"
                visit(value.__code__, value.__globals__)
            elif _plain(value):
                found[name] = repr(value)

    for attribute in vars(cls).values():
        function = getattr(attribute, "__func__", attribute)
        if isinstance(function, types.FunctionType):
            visit(function.__code__, function.__globals__)
    return tuple(sorted(found.items()))


@functools.lru_cache(maxsize=4)
def _versions(exporter: str) -> str:
    """The versions the exported graph depends on: Python, torch (the TorchScript exporter), onnx,
    and onnxscript for the dynamo exporter."""
    from importlib import metadata

    import torch

    parts = [f"python{sys.version_info[0]}.{sys.version_info[1]}", f"torch{torch.__version__}"]
    for dist in ("onnx", "onnxscript") if exporter == "dynamo" else ("onnx",):
        try:
            parts.append(f"{dist}{metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist}-missing")
    return "/".join(parts)


def architecture_key(
    module: torch.nn.Module, example: torch.Tensor, arch: str = "", exporter: str = ""
) -> str:
    """A digest of everything the exported graph depends on except the weights' values."""
    return _exporter_key(_architecture_digest(module, example, arch), exporter)


def _exporter_key(architecture: str, exporter: str) -> str:
    digest = hashlib.sha256(f"{architecture}\0{exporter}\0{_versions(exporter)}".encode())
    return digest.hexdigest()[:32]


def _architecture_digest(module: torch.nn.Module, example: torch.Tensor, arch: str) -> str:
    """The exporter-independent part of the key: the caller's description of the constructor,
    the input signature, every user class's source and the globals its methods use, the module
    tree, each module's plain attributes (a `self.scale = 2.0` that repr does not show), and the
    name, shape and dtype of every parameter and buffer."""
    digest = hashlib.sha256()

    def add(text: str) -> None:
        digest.update(text.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")

    add(f"nnprobe-export/{FORMAT_VERSION}/opset{OPSET}")
    add(arch)
    add(f"{tuple(example.shape[1:])}/{example.dtype}")
    classes: dict[str, type] = {}
    for sub in module.modules():
        for cls in type(sub).__mro__:
            if cls.__module__.startswith("torch.") or cls is object:
                break
            classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for name in sorted(classes):
        add(name)
        add(_class_source(classes[name]))
        for global_name, text in _code_globals(classes[name]):
            add(global_name)
            add(text)
    add(repr(module))
    for name, sub in module.named_modules(remove_duplicate=False):
        plain = sorted(
            (k, repr(v))
            for k, v in vars(sub).items()
            if not k.startswith("_") and k != "training" and _plain(v)
        )
        if plain:
            add(f"{name}:{plain}")
    for name, tensor in _state(module):
        add(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}")
    return digest.hexdigest()


def _state(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every parameter and buffer under every name it has (tied weights appear twice)."""
    named = list(module.named_parameters(remove_duplicate=False))
    named += [(n, b) for n, b in module.named_buffers(remove_duplicate=False) if b is not None]
    return named


def export_module(
    module: torch.nn.Module,
    example: torch.Tensor,
    *,
    cache_dir: Path | None = None,
    arch: str = "",
    exporters: Sequence[str] = EXPORTERS,
    use_cache: bool = True,
) -> ExportedGraph:
    """The graph of `module`'s architecture (from the cache when it is there); raises ExportError.

    `example` is a batch of at least two inputs; the exported graph has a dynamic batch axis.
    `module` itself is not touched: a copy is exported.
    """
    import onnx

    errors: list[str] = []
    directory = (cache_dir or default_cache_dir()) / "graphs"
    digest = _architecture_digest(module, example, arch)
    failed_key = _exporter_key(digest, "failed:" + ",".join(exporters))
    if use_cache:
        known_failure = _read_failure(directory, failed_key)
        if known_failure is not None:
            raise ExportError(known_failure)
    for exporter in exporters:
        key = _exporter_key(digest, exporter)
        if use_cache:
            cached = _read_cache(directory, key, module)
            if cached is not None:
                return cached
        start = time.perf_counter()
        try:
            proto = _export_copy(module, example, exporter)
        except ExportError as exc:
            if out_of_memory(exc) is not None:
                # The forward ran out of memory while traced: no exporter does better, and a
                # larger budget might succeed, so it is neither retried nor remembered.
                raise
            errors.append(f"{exporter} exporter: {exc}")
            continue
        seconds = time.perf_counter() - start
        names = [n for n, _ in _state(module)]
        bound = sorted({t.name for t in proto.graph.initializer} & set(names))
        graph = ExportedGraph(
            model=proto,
            key=key,
            exporter=exporter,
            cache_hit=False,
            export_seconds=seconds,
            bound_names=bound,
            module_names=[n for n, _ in module.named_modules(remove_duplicate=False)],
        )
        if use_cache and _rebindable(proto, set(names)):
            _write_cache(directory, graph, onnx)
        return graph
    message = "; ".join(errors) or "no exporter configured"
    if use_cache:
        # The same architecture fails the same way: the next checkpoint goes straight to eager.
        write_entry(directory / f"{failed_key}.failed", "failure", failed_key, {}, message.encode())
    raise ExportError(message)


def _read_failure(directory: Path, key: str) -> str | None:
    entry = read_entry(directory / f"{key}.failed", "failure", key)
    return entry[1].decode("utf-8", "replace") if entry is not None else None


def _rebindable(proto: onnx.ModelProto, names: set[str]) -> bool:
    """False when a weight-sized float initializer is not a parameter or buffer (folded weights)."""
    import onnx

    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
    for t in proto.graph.initializer:
        size = 1
        for d in t.dims:
            size *= d
        if t.name not in names and t.data_type in floats and size > 1:
            return False
    return True


def _jittered_copy(module: torch.nn.Module) -> torch.nn.Module:
    import torch

    try:
        clone = copy.deepcopy(module)
    except Exception as exc:  # models holding locks, files, generators...
        raise ExportError(
            f"the model cannot be copied for export ({type(exc).__name__}: {exc})"
        ) from exc
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        seen: set[int] = set()
        for _, tensor in _state(clone):
            if id(tensor) in seen or not tensor.is_floating_point() or tensor.numel() == 0:
                continue
            seen.add(id(tensor))
            noise = torch.rand(tensor.shape, generator=generator, dtype=torch.float64)
            scale = float(tensor.detach().abs().mean()) * 1e-4 + 1e-6
            tensor.add_((noise * scale).to(tensor.dtype))
    return clone.eval()


@contextlib.contextmanager
def _quiet() -> Iterator[list[warnings.WarningMessage]]:
    """Silence the exporters (Python prints, logs, and the C++ side writing to fds 1 and 2); hand
    back the warnings they raised."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    sink = io.StringIO()
    saved: list[tuple[int, int]] = []
    with contextlib.ExitStack() as stack:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            stack.callback(os.close, devnull)
            for fd in (1, 2):
                with contextlib.suppress(OSError):
                    sys.stdout.flush()
                    sys.stderr.flush()
                    saved.append((fd, os.dup(fd)))
                    os.dup2(devnull, fd)
        except OSError:
            pass
        try:
            with (
                warnings.catch_warnings(record=True) as caught,
                contextlib.redirect_stdout(sink),
                contextlib.redirect_stderr(sink),
            ):
                warnings.simplefilter("always")
                yield caught
        finally:
            for fd, copy_fd in saved:
                os.dup2(copy_fd, fd)
                os.close(copy_fd)
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(exc: BaseException) -> str:
    """The exception's first line, with the innermost cause's (where the real reason usually is)."""

    def line(e: BaseException) -> str:
        text = _ANSI.sub("", str(e)).strip().splitlines()
        return f"{type(e).__name__}: {text[0] if text else ''}".strip()

    root = exc
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    out = line(exc) if root is exc else f"{line(exc)} ({line(root)})"
    return out[:400]


def _export_copy(module: torch.nn.Module, example: torch.Tensor, exporter: str) -> onnx.ModelProto:
    import onnx
    import torch

    clone = _jittered_copy(module)
    x = example[:2]
    try:
        # Grad mode stays on: under no_grad, nn.TransformerEncoderLayer takes a fused fast path
        # (aten::_transformer_encoder_layer_fwd) that has no ONNX export.
        with _quiet() as caught:
            if exporter == "torchscript":
                buffer = io.BytesIO()
                torch.onnx.export(
                    clone,
                    (x,),
                    buffer,
                    input_names=["input"],
                    dynamic_axes={"input": {0: "batch"}},
                    opset_version=OPSET,
                    do_constant_folding=False,
                    training=torch.onnx.TrainingMode.EVAL,
                    dynamo=False,
                )
                proto = onnx.load_from_string(buffer.getvalue())
            elif exporter == "dynamo":
                program = torch.onnx.export(
                    clone,
                    (x,),
                    dynamo=True,
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    optimize=False,
                    verbose=False,
                )
                if program is None:
                    raise ExportError("the exporter returned no program")
                proto = program.model_proto
            else:
                raise ExportError(f"unknown exporter {exporter!r}")
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(_first_line(exc)) from exc
    torch_dir = os.path.dirname(torch.__file__)
    for w in caught:
        # torch's own modules branch on shapes (safe); a branch in the user's code is on data.
        if (
            w.category.__name__ == "TracerWarning"
            and "Python boolean" in str(w.message)
            and not os.path.abspath(w.filename).startswith(torch_dir)
        ):
            raise ExportError(
                "the forward has data-dependent control flow (a tensor was converted to a Python "
                "bool), so one traced branch would not describe the model"
            )
    _validate(clone, proto, example)
    return proto


def _validate(clone: torch.nn.Module, proto: onnx.ModelProto, example: torch.Tensor) -> None:
    """The graph must match the eager forward, also at a batch size it was not traced at."""
    import numpy as np
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ExportError(f"ONNX Runtime rejects the exported graph ({_first_line(exc)})") from exc
    name = session.get_inputs()[0].name
    batch = example if example.shape[0] >= 3 else torch.cat([example, example[:1]])
    x = batch[:3]
    try:
        with torch.no_grad():
            expected = [t.detach().float().numpy() for t in _tensors(clone(x))]
    except Exception as exc:
        raise ExportError(
            f"the model's forward fails at batch size 3 ({_first_line(exc)})"
        ) from exc
    try:
        got = session.run(None, {name: x.numpy()})
    except Exception as exc:
        raise ExportError(
            f"the exported graph fails at batch size 3 ({_first_line(exc)}); a batch size or "
            "shape is probably fixed in the trace"
        ) from exc
    for want, have in zip(expected, got, strict=False):
        have = np.asarray(have, dtype=np.float32)
        if want.shape != have.shape:
            raise ExportError(
                f"the exported graph gives an output of shape {have.shape} where the model gives "
                f"{want.shape}"
            )
        scale = float(np.nanmax(np.abs(want))) if want.size and np.isfinite(want).any() else 1.0
        if not np.allclose(want, have, rtol=1e-3, atol=1e-4 * (scale + 1e-6), equal_nan=True):
            raise ExportError(
                "the exported graph disagrees with the eager forward on the same inputs "
                "(data-dependent control flow or shapes the trace fixed)"
            )


def _tensors(output: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        out: list[torch.Tensor] = []
        for item in output:
            out.extend(_tensors(item))
        return out
    return []


def weight_arrays(graph: ExportedGraph, module: torch.nn.Module) -> dict[str, Any]:
    """`module`'s current values of the graph's parameter initializers, by initializer name."""
    index = {t.name for t in graph.model.graph.initializer}
    arrays: dict[str, Any] = {}
    for name, tensor in _state(module):
        if name in index and name not in arrays:
            arrays[name] = tensor.detach().cpu().numpy()
    missing = set(graph.bound_names) - set(arrays)
    if missing:
        raise ExportError(
            f"the model has no weights for {len(missing)} graph initializer(s), e.g. "
            f"{sorted(missing)[0]!r}"
        )
    return arrays


def bind_weights(graph: ExportedGraph, module: torch.nn.Module) -> onnx.ModelProto:
    """A copy of the graph whose parameter initializers hold `module`'s current values."""
    import onnx
    from onnx import numpy_helper

    arrays = weight_arrays(graph, module)
    bound = onnx.ModelProto()
    bound.CopyFrom(graph.model)
    for tensor in bound.graph.initializer:
        if tensor.name in arrays:
            tensor.CopyFrom(numpy_helper.from_array(arrays[tensor.name], tensor.name))
    return bound


def _read_cache(directory: Path, key: str, module: torch.nn.Module) -> ExportedGraph | None:
    """The cached graph for `key`, verified against `module`; a damaged or foreign one is
    discarded (the caller exports again)."""
    import onnx

    path = directory / f"{key}.graph"
    entry = read_entry(path, "graph", key)
    if entry is None:
        return None
    meta, payload = entry
    try:
        model = onnx.load_model_from_string(payload)
        graph = ExportedGraph(
            model=model,
            key=key,
            exporter=str(meta["exporter"]),
            cache_hit=True,
            export_seconds=0.0,
            bound_names=[str(n) for n in meta["bound_names"]],
            module_names=[str(n) for n in meta["module_names"]],
        )
    except Exception as exc:  # a protobuf or metadata that does not parse
        discard(path, f"unreadable graph ({type(exc).__name__}: {exc})")
        return None
    mismatch = _mismatch(graph, module)
    if mismatch:
        discard(path, mismatch)
        return None
    return graph


def _mismatch(graph: ExportedGraph, module: torch.nn.Module) -> str:
    """Why a cached graph cannot be this module's ('' when it can): its input, its outputs, the
    module tree it was exported from, and a weight-less initializer of the right shape for every
    parameter it binds."""
    proto = graph.model.graph
    initializers = {t.name: tuple(t.dims) for t in proto.initializer}
    if len([i for i in proto.input if i.name not in initializers]) != 1:
        return "the graph does not take one input"
    if not proto.output or not proto.node:
        return "the graph has no outputs"
    if graph.module_names != [n for n, _ in module.named_modules(remove_duplicate=False)]:
        return "the graph was exported from another module tree"
    shapes = {n: tuple(t.shape) for n, t in _state(module)}
    for name in graph.bound_names:
        if name not in shapes or initializers.get(name) != shapes[name]:
            return f"initializer {name!r} does not match the model's parameter"
    return ""


def _write_cache(directory: Path, graph: ExportedGraph, onnx: Any) -> None:
    """Store the graph without weight data (it is re-bound per checkpoint) in one entry."""
    stripped = onnx.ModelProto()
    stripped.CopyFrom(graph.model)
    names = set(graph.bound_names)
    for t in stripped.graph.initializer:
        if t.name in names:
            name, dims, dtype = t.name, list(t.dims), t.data_type
            t.Clear()
            t.name, t.data_type = name, dtype
            t.dims.extend(dims)
    meta = {
        "exporter": graph.exporter,
        "export_seconds": graph.export_seconds,
        "bound_names": graph.bound_names,
        "module_names": graph.module_names,
    }
    path = directory / f"{graph.key}.graph"
    write_entry(path, "graph", graph.key, meta, stripped.SerializeToString())
