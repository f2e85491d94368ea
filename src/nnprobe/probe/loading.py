"""Opens the model files users actually have, without ever running code they contain.

| file | read with | needs |
|---|---|---|
| `.onnx` | `onnx.load` (initializers, graph) | onnx, numpy |
| `.safetensors` | safetensors' numpy API | safetensors, numpy |
| `.pt/.pth/.ckpt/.bin` state_dicts and bundles | `torch.load(weights_only=True)` | torch |
| TorchScript archives | refused (NP902); opted in: `torch.jit.load`, worker only | torch |
| full pickled models | refused (NP902) unless `allow_pickle` | torch |

The format is recognised from the file's content, not its name (a `.ckpt` may be TorchScript, a
`.bin` a safetensors file). A TorchScript archive is a program: `torch.jit.load` runs its code (a
class's `__setstate__`, which can write and read files, print, loop or allocate at will) and a
probe runs its `forward`. It is refused like a pickle, its weights read without running it
(nnprobe.probe.torchscript_archive); trusted and opted in, it is loaded only in the worker process,
whose client bounds its time and memory and owns its stdout (`allow_programs_here`). Every failure
is a `LoadError` whose code is the finding to report (NP901 unreadable, NP902 refused pickle or
program) and whose message says why in a user's words.
"""

from __future__ import annotations

import json
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nnprobe.core import trust
from nnprobe.probe.layers import FileStructure, Layer, infer_layers, module_structure
from nnprobe.probe.pickle_scan import SCAN_LIMIT, Imports, would_import
from nnprobe.probe.state_dicts import (
    EPOCH_KEYS,
    STEP_KEYS,
    NotWeights,
    bundle_metadata,
    find_state_dict,
    strip_wrappers,
    to_numpy,
)
from nnprobe.probe.torchscript_archive import ArchiveUnreadable, is_torchscript, read_weights
from nnprobe.probe.zip_limits import ArchiveRefused, checked_members

Kind = Literal["onnx", "state_dict", "safetensors", "torchscript", "pickled-model"]
INSTALL_HINT = "pip install 'nnprobe[probe]'"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_GLOBAL = re.compile(r"(?:GLOBAL|Unsupported class) ([\w.]+)")
# safetensors dtype codes by the names torch gives them, so every loader reports the same names.
_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
    "BOOL": "bool",
}


class LoadError(Exception):
    """Why a file could not be loaded. `code` is the NP9xx finding to report; `not_weights` marks
    files that are readable but hold no model (probe data, unrelated binaries), which a directory
    walk skips rather than reports. `unrun` holds the weights of a refused TorchScript archive,
    read without running it, for the weight rules."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        not_weights: bool = False,
        unrun: Checkpoint | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.not_weights = not_weights
        self.unrun = unrun


class WorkerOnly(LoadError):
    """A TorchScript archive this run may load, but not in this process: only the worker, whose
    client bounds its time and memory and keeps its prints off nnprobe's stdout, runs one."""


@dataclass
class Checkpoint:
    """Weights and what is known about them.

    `tensors` holds the floating parameters and buffers by module path (PyTorch layout; float32,
    float64 kept; half precision widened, its original dtype in `dtypes`); `other` the non-floating
    ones (`num_batches_tracked`). `metadata` holds what was saved beside the weights: `epoch`,
    `step`, `global_step`, optimizer settings `lr`, `momentum`, `weight_decay`, `betas`, and for
    ONNX the producer. `model` is the onnx.ModelProto, the TorchScript module or the unpickled
    nn.Module. `container` is the bundle key the state_dict sat under, `prefix` the wrapper prefix
    stripped from every name ("model.").
    """

    path: Path
    kind: Kind
    tensors: dict[str, np.ndarray]
    metadata: dict[str, Any] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    other: dict[str, np.ndarray] = field(default_factory=dict)
    model: Any = None
    structure: FileStructure = field(default_factory=FileStructure)
    container: str | None = None
    prefix: str = ""
    display: str = ""

    def __post_init__(self) -> None:
        if not self.display:
            self.display = self.path.as_posix()

    @property
    def step(self) -> int | None:
        """The optimizer step the weights were saved at, when the file says."""
        for key in STEP_KEYS:
            value = self.metadata.get(key)
            if isinstance(value, int):
                return value
        return None

    @property
    def epoch(self) -> int | None:
        for key in EPOCH_KEYS:
            value = self.metadata.get(key)
            if isinstance(value, int):
                return value
        return None

    @property
    def at_init(self) -> bool | None:
        """True at step 0, False after it, None when the file does not say. Epoch 0 alone does not
        count: many scripts save their first epoch's end as epoch 0."""
        step = self.step
        return None if step is None else step == 0

    def layers(self, activation_hints: dict[str, str] | None = None) -> list[Layer]:
        return infer_layers(self, activation_hints)


def load_checkpoint(path: Path | str, allow_pickle: bool = False) -> Checkpoint:
    """The weights in `path`. Raises LoadError (NP901 unreadable, NP902 refused pickle). In an
    untrusted run (nnprobe.core.trust) nothing is unpickled, whatever `allow_pickle` says."""
    if trust.code_allowed():
        return _load_checkpoint(Path(path), allow_pickle)
    try:
        return _load_checkpoint(Path(path), False)
    except LoadError as exc:
        if exc.code != "NP902" or trust.UNTRUSTED_WAYS in exc.message:  # TorchScript's says so
            raise
        raise LoadError("NP902", f"{exc.message}; {trust.REFUSED_PICKLE}") from None


def _load_checkpoint(path: Path, allow_pickle: bool) -> Checkpoint:
    try:
        if not path.is_file():
            raise LoadError("NP901", "not a regular file")
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError as exc:
        raise LoadError("NP901", f"cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise LoadError("NP901", "empty file (0 bytes)")
    if head.startswith(_ZIP_MAGIC):
        return _load_zip(path, allow_pickle, size)
    if _looks_like_safetensors(head, size):
        return _load_safetensors(path)
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return _load_torch(path, allow_pickle, zipped=False)
    if path.suffix.lower() == ".onnx":
        return _load_onnx(path)
    if path.suffix.lower() == ".safetensors":
        raise LoadError("NP901", "not a safetensors file (its 8-byte header length is invalid)")
    if _looks_like_old_pickle(path):
        return _load_torch(path, allow_pickle, zipped=False)
    raise LoadError(
        "NP901",
        "not a PyTorch checkpoint, safetensors or ONNX file "
        f"(unrecognised first bytes {head[:8].hex(' ')})",
        not_weights=path.suffix.lower() == ".bin",
    )


def _looks_like_old_pickle(path: Path) -> bool:
    """A protocol 0 or 1 pickle (no 0x80 PROTO opcode in front): its opcodes parse, from the first
    byte, up to STOP or through a GLOBAL/INST naming a dotted Python name. Read, never run."""
    import pickletools

    try:
        with path.open("rb") as handle:
            head = handle.read(SCAN_LIMIT)
    except OSError:
        return False
    named = False
    try:
        for opcode, arg, _ in pickletools.genops(head):
            if opcode.name == "STOP":
                return True
            if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                named = named or all(p.isidentifier() for p in arg.replace(" ", ".").split("."))
    except Exception:
        return named
    return named


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= size - 8 and head[8:9] == b"{"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise LoadError(
            "NP901",
            f"reading PyTorch checkpoints needs PyTorch, which is not installed: {INSTALL_HINT}",
        ) from None
    return torch


def _load_zip(path: Path, allow_pickle: bool, size: int) -> Checkpoint:
    try:
        names = checked_members(path, size)
    except ArchiveRefused as exc:
        raise LoadError("NP901", str(exc)) from None
    except zipfile.BadZipFile:
        raise LoadError(
            "NP901",
            "truncated or corrupt zip archive (no end-of-archive record): the file was cut off, "
            "or is still being written",
        ) from None
    except (OSError, ValueError) as exc:
        raise LoadError("NP901", f"unreadable zip archive: {_first_line(exc)}") from None
    if is_torchscript(names):
        return _load_torchscript(path, allow_pickle)
    if any(n.endswith("data.pkl") for n in names):
        return _load_torch(path, allow_pickle, zipped=True)
    raise LoadError(
        "NP901",
        "a zip archive, but not one that torch.save or TorchScript writes (it has no data.pkl)",
        not_weights=True,
    )


def _load_torch(path: Path, allow_pickle: bool, zipped: bool) -> Checkpoint:
    if path.suffix.lower() == ".safetensors":  # torch.load reads any *.safetensors as safetensors
        raise LoadError(
            "NP901", "a PyTorch checkpoint misnamed .safetensors (torch.load refuses it): rename it"
        )
    torch = _import_torch()
    try:
        with warnings.catch_warnings():
            # "Detected pickle protocol 4 ...": torch's advice to the file's writer, not our user
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)
    except pickle.UnpicklingError as exc:
        names = _refused_imports(path, exc)
        if not names.names:
            raise LoadError("NP901", f"corrupt pickle data ({_last_line(exc)})") from None
        if not allow_pickle:
            raise LoadError("NP902", refusal_message(names)) from None
        obj = _load_pickled(torch, path)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError("NP901", f"torch.load failed: {_first_line(exc)}") from None
    return _from_object(torch, path, obj)


def _refused_imports(path: Path, exc: pickle.UnpicklingError) -> Imports:
    """What an opted-in load would import, from the file's opcodes; without a scanner, the one
    global torch's weights-only unpickler named (it stops before naming one after protocol 4's
    FRAME, so a bare `pickle.dump` then reads as corrupt)."""
    found = would_import(path)
    if found is not None and found.names:
        return found
    match = _GLOBAL.search(str(exc))
    return Imports([match.group(1)] if match and found is None else [])


def _last_line(exc: BaseException) -> str:
    match = re.search(r"WeightsUnpickler error: (.*?)(?:\n\n|$)", str(exc), re.S)
    return " ".join(match.group(1).split()) if match else _first_line(exc)


_LISTED = 6  # imports named in the message; the rest are counted


def refusal_message(imports: Imports) -> str:
    """NP902's reason: what the file holds and every global an opted-in load would import."""
    names = imports.names
    model = next(
        (n for n in names if n.rsplit(".", 1)[-1][:1].isupper() and n not in imports.dangerous),
        None,
    )
    if model and imports.dangerous:
        what = f"a whole pickled model ({model}) that also calls {imports.dangerous[0]}"
    elif imports.dangerous:
        what = f"a pickle that calls {imports.dangerous[0]}"
    elif model:
        what = f"a whole pickled model ({model})"
    else:
        what = "a pickled Python object"
    listed = ", ".join(names[:_LISTED])
    if len(names) > _LISTED:
        listed += f" and {len(names) - _LISTED} more"
    if not imports.complete:
        listed += (
            f" (and maybe more: only the first {SCAN_LIMIT // 2**20} MiB of its pickle was read)"
        )
    return (
        f"refused to unpickle: this file holds {what}; loading it would import {listed}, and "
        "unpickling can run arbitrary code. Save the weights instead, "
        "torch.save(model.state_dict(), path), or, if you trust this file, opt in with "
        "--allow-pickle (config: allow-pickle = true)"
    )


def _load_pickled(torch: Any, path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as exc:
        raise LoadError(
            "NP901",
            f"the pickled model needs code that is not importable here ({_first_line(exc)}); "
            "save model.state_dict() instead, so no class needs to be found",
        ) from None
    except Exception as exc:
        raise LoadError("NP901", f"torch.load failed: {_first_line(exc)}") from None


def _from_object(torch: Any, path: Path, obj: Any) -> Checkpoint:
    try:
        state, container = find_state_dict(obj)
    except NotWeights as exc:
        raise LoadError("NP901", str(exc), not_weights=exc.data_like) from None
    live = obj if isinstance(obj, torch.nn.Module) else None
    if live is None and container is not None and isinstance(obj, dict):
        candidate = obj.get(container.split(".")[0])
        live = candidate if isinstance(candidate, torch.nn.Module) else None
    checkpoint = _from_state_dict(path, "state_dict" if live is None else "pickled-model", state)
    checkpoint.container = container
    checkpoint.metadata.update(bundle_metadata(obj))
    if live is not None:
        checkpoint.model = live
        checkpoint.structure = _strip_structure(module_structure(live), checkpoint.prefix)
    return checkpoint


def _from_state_dict(path: Path, kind: Kind, state: Any) -> Checkpoint:
    prefix = strip_wrappers([k for k in state if isinstance(k, str)])
    tensors: dict[str, np.ndarray] = {}
    other: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    for key, value in state.items():
        if not hasattr(value, "dtype"):
            continue
        name = key[len(prefix) :]
        array, dtype = to_numpy(value)
        dtypes[name] = dtype
        if array is None:
            continue
        (tensors if array.dtype.kind == "f" else other)[name] = array
    if not tensors and not other:
        raise LoadError("NP901", "the state_dict holds no tensors")
    return Checkpoint(path, kind, tensors, dtypes=dtypes, other=other, prefix=prefix)


def _strip_structure(structure: FileStructure, prefix: str) -> FileStructure:
    """Module paths of a live module relative to the stripped wrapper prefix."""
    if not prefix:
        return structure
    base = prefix.rstrip(".")

    def rel(path: str) -> str | None:
        if path == base:
            return ""
        return path[len(prefix) :] if path.startswith(prefix) else None

    out = FileStructure()
    for path, kind in structure.kinds.items():
        if (r := rel(path)) is not None:
            out.kinds[r] = kind
    for path, activation in structure.activations.items():
        if (r := rel(path)) is not None:
            out.activations[r] = activation
    out.normalized = {r for p in structure.normalized if (r := rel(p)) is not None}
    return out


# Set only by the worker process (nnprobe.worker): the one process that runs a TorchScript
# archive's code, where a client's time and memory budget can stop it and fd 1 is not ours.
_PROGRAMS_HERE = False


def allow_programs_here() -> None:
    """Mark this process as the probe worker, where trusted, opted-in TorchScript may load."""
    global _PROGRAMS_HERE
    _PROGRAMS_HERE = True


TORCHSCRIPT_RUNS = (
    "a TorchScript archive is a program: torch.jit.load runs its code (a class's __setstate__, "
    "which can write and read files, print, loop or allocate without bound) and the probe runs "
    "its forward"
)


def _load_torchscript(path: Path, allow_pickle: bool) -> Checkpoint:
    if not allow_pickle or not trust.code_allowed():
        unrun, said = _unrun_torchscript(path)
        if not trust.code_allowed():
            ask = (
                f"this run is untrusted ({trust.UNTRUSTED_WAYS}): no TorchScript is run, "
                "whatever allow-pickle says"
            )
        else:
            ask = (
                "if you trust this file, opt in with --allow-pickle (config: allow-pickle = "
                "true) and it is loaded in nnprobe's probe worker, under its time and memory "
                "budget"
            )
        message = f"refused to load TorchScript: {TORCHSCRIPT_RUNS}; {said}; {ask}"
        raise LoadError("NP902", message, unrun=unrun)
    if not _PROGRAMS_HERE:
        raise WorkerOnly(
            "NP902",
            f"refused to load TorchScript in this process: {TORCHSCRIPT_RUNS}, so only nnprobe's "
            "probe worker loads one, under its time and memory budget",
        )
    torch = _import_torch()
    try:
        module = torch.jit.load(str(path), map_location="cpu")
        checkpoint = _from_state_dict(path, "torchscript", module.state_dict())
    except LoadError:
        raise
    except Exception as exc:
        from nnprobe.probe.memory import out_of_memory

        refused = out_of_memory(exc)
        if refused is not None:
            raise LoadError(
                "NP904", f"loading the TorchScript archive ran out of memory: {refused}"
            ) from None
        raise LoadError("NP901", f"torch.jit.load failed: {_first_line(exc)}") from None
    checkpoint.model = module
    checkpoint.structure = _strip_structure(module_structure(module), checkpoint.prefix)
    return checkpoint


def unrun_weights(path: Path | str) -> Checkpoint | None:
    """A TorchScript archive's weights read without running it (None when they cannot be), for
    the weight rules when the worker that was to load it stopped."""
    return _unrun_torchscript(Path(path))[0]


def _unrun_torchscript(path: Path) -> tuple[Checkpoint | None, str]:
    """A refused archive's weights, read without running it, and what the message says of them."""
    try:
        weights = read_weights(path)
    except ArchiveUnreadable as exc:
        return None, f"its weights could not be read without running it: {exc}"
    custom = f"{', '.join(weights.unnamed[:3])}: its class has its own __getstate__"
    if not weights.tensors:
        if weights.unnamed:
            return None, f"its weights cannot be named without running it ({custom})"
        return None, "it holds no weights that can be read without running it"
    tensors: dict[str, np.ndarray] = {}
    other: dict[str, np.ndarray] = {}
    for name, array in weights.tensors.items():
        (tensors if array.dtype.kind == "f" else other)[name] = array
    prefix = strip_wrappers(list(weights.tensors))
    cut = len(prefix)
    checkpoint = Checkpoint(
        path,
        "torchscript",
        {k[cut:]: v for k, v in tensors.items()},
        dtypes={k[cut:]: v for k, v in weights.dtypes.items()},
        other={k[cut:]: v for k, v in other.items()},
        prefix=prefix,
    )
    checkpoint.structure = _strip_structure(module_structure(weights.root), prefix)
    count = len(weights.tensors)
    said = f"its {count} weight tensor{'s' if count != 1 else ''} were read without running it"
    if weights.unnamed:
        said += f", not those of {custom}"
    return checkpoint, said


def _load_safetensors(path: Path) -> Checkpoint:
    try:
        from safetensors import safe_open
    except ImportError:
        raise LoadError(
            "NP901", f"reading .safetensors needs the safetensors package: {INSTALL_HINT}"
        ) from None
    tensors: dict[str, np.ndarray] = {}
    other: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    try:
        header = _safetensors_header(path)
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                dtype = str(header.get(name, {}).get("dtype", ""))
                if dtype == "BF16":
                    array = _bfloat16(path, header, name)
                else:
                    array = handle.get_tensor(name)
                dtypes[name] = _SAFETENSORS_DTYPES.get(dtype, dtype.lower() or str(array.dtype))
                if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
                    array = array.astype(np.float32)
                (tensors if array.dtype.kind == "f" else other)[name] = array
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError("NP901", f"cannot read the safetensors file: {_first_line(exc)}") from None
    if not tensors and not other:
        raise LoadError("NP901", "the safetensors file holds no tensors")
    checkpoint = _from_arrays(path, tensors, other, dtypes)
    checkpoint.metadata.update(_string_metadata(metadata))
    return checkpoint


def _safetensors_header(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header["__offset__"] = 8 + length
    return dict(header)


def _bfloat16(path: Path, header: dict[str, Any], name: str) -> np.ndarray:
    """bfloat16 is the top half of a float32; numpy has no bfloat16, so widen the raw bits."""
    entry = header[name]
    start, end = entry["data_offsets"]
    with path.open("rb") as handle:
        handle.seek(int(header["__offset__"]) + int(start))
        raw = np.frombuffer(handle.read(int(end) - int(start)), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def _from_arrays(
    path: Path, tensors: dict[str, np.ndarray], other: dict[str, np.ndarray], dtypes: dict[str, str]
) -> Checkpoint:
    prefix = strip_wrappers(list(tensors) + list(other))
    cut = len(prefix)
    return Checkpoint(
        path,
        "safetensors",
        {k[cut:]: v for k, v in tensors.items()},
        dtypes={k[cut:]: v for k, v in dtypes.items()},
        other={k[cut:]: v for k, v in other.items()},
        prefix=prefix,
    )


def _string_metadata(metadata: dict[str, str]) -> dict[str, Any]:
    """safetensors' string metadata, with step and epoch counters as numbers."""
    out: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in (*STEP_KEYS, *EPOCH_KEYS) and value.strip().isdigit():
            out[key] = int(value)
    if metadata:
        out["file_metadata"] = dict(metadata)
    return out


def _load_onnx(path: Path) -> Checkpoint:
    try:
        import onnx
    except ImportError:
        raise LoadError(
            "NP901", f"reading ONNX models needs the onnx package: {INSTALL_HINT}"
        ) from None
    from nnprobe.probe.onnx_weights import MAX_NODES, node_count, read_weights, too_many_nodes

    try:
        model = onnx.load(str(path), load_external_data=True)
    except onnx.checker.ValidationError as exc:
        raise LoadError(
            "NP901", f"refused the ONNX model's external data: {_first_line(exc)}"
        ) from None
    except Exception as exc:
        raise LoadError(
            "NP901", f"not an ONNX protobuf, or a truncated one ({_first_line(exc)})"
        ) from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.graph.node:
        raise LoadError("NP901", "not an ONNX model: the file holds no graph")
    nodes = node_count(model.graph)
    if nodes > MAX_NODES:
        raise LoadError("NP901", too_many_nodes(nodes))
    try:
        weights = read_weights(model)
    except Exception as exc:
        raise LoadError("NP901", f"cannot read the ONNX weights: {_first_line(exc)}") from None
    checkpoint = Checkpoint(
        path,
        "onnx",
        weights.tensors,
        dtypes=weights.dtypes,
        other=weights.other,
        model=model,
        structure=weights.structure,
    )
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    if producer:
        checkpoint.metadata["producer"] = producer
    props = {p.key: p.value for p in model.metadata_props}
    checkpoint.metadata.update(_string_metadata(props))
    return checkpoint
