"""A TorchScript archive's weights, read without running the archive.

A TorchScript archive (`torch.jit.save`) is a program, not data: `code/` holds the TorchScript
source of every class and `data.pkl` the module tree, pickled with those classes. `torch.jit.load`
rebuilds the tree by running the archive's code: a class's `__setstate__` runs at load and may
write a file (`aten::save`), read one into the weights (`aten::from_file`), print, loop or
allocate without bound, and its `forward` runs when the model is probed. nnprobe.probe.loading
therefore loads an archive only when the run is trusted and opted in, and only in the worker.

The weights are still readable without it. data.pkl is an ordinary pickle whose globals are the
archive's class names (`__torch__.…`), `torch._utils._rebuild_tensor_v2`, the storage types and
`collections.OrderedDict`; the unpickler here maps each class name to an inert record (nothing of
the archive's code is looked at, let alone run), each storage to its `data/N` member's bytes
(checked against the size it claims), and refuses every other global, as weights_only does.
Parameters and buffers are told from other tensor attributes by each class's `__parameters__` and
`__buffers__` lines in `code/`, read as text. A class with its own `__getstate__` pickles whatever
that returned instead of named attributes: its own tensors cannot be named and are left out.
"""

from __future__ import annotations

import math
import pickle
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

# A module tree's pickle is small (about 200 bytes a module); a larger one would cost memory in
# Python objects out of proportion to its size before a single weight is seen.
MAX_PICKLE = 2 * 2**20
MAX_CODE = 2**20  # bytes of one class file read for its __parameters__/__buffers__ lines
MAX_MODULES = 100_000
_STORAGE_DTYPES = {
    "FloatStorage": "float32",
    "DoubleStorage": "float64",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
# torch.jit._pickle's helpers for typed lists and dicts: each returns its first argument.
_PASS_THROUGH = frozenset(
    {"build_intlist", "build_floatlist", "build_doublelist", "build_boollist", "restore_type_tag"}
)
_NAMES = re.compile(r'"([^"\\]*)"')


class ArchiveUnreadable(Exception):
    """The weights cannot be read without running the archive; the message says why."""


def is_torchscript(names: list[str]) -> bool:
    """Whether a zip's member names are a TorchScript archive's: torch.load hands any archive
    with a top-level constants.pkl to torch.jit.load; code/ holds an archive's classes."""
    return any(n.endswith("/constants.pkl") or n == "constants.pkl" or "/code/" in n for n in names)


@dataclass
class ArchiveWeights:
    """Parameters and buffers by module path (float16 and bfloat16 widened to float32, their own
    dtype in `dtypes`), the module tree as data, and module paths whose own tensors were left
    out (their class has a custom `__getstate__`)."""

    tensors: dict[str, np.ndarray]
    dtypes: dict[str, str]
    root: ScriptObject
    unnamed: list[str] = field(default_factory=list)


class ScriptObject:
    """One object of the archive's module tree, as data: its class's qualified name and its
    pickled state. Enough of nn.Module's shape (`original_name`, `named_modules`,
    `named_children`) for nnprobe.probe.layers.module_structure."""

    qualname = ""

    def __setstate__(self, state: Any) -> None:  # pickle's BUILD: keep the state, run nothing
        self.state = state

    @property
    def original_name(self) -> str:
        return str(self.qualname).rsplit(".", 1)[-1]

    def attributes(self) -> dict[str, Any]:
        state = getattr(self, "state", None)
        return state if isinstance(state, dict) else {}

    def named_children(self) -> list[tuple[str, ScriptObject]]:
        return [(str(k), v) for k, v in self.attributes().items() if isinstance(v, ScriptObject)]

    def named_modules(self) -> Iterator[tuple[str, ScriptObject]]:
        """Pre-order, each object once (a pickle may make a tree a graph), iteratively."""
        seen: set[int] = set()
        stack: list[tuple[str, ScriptObject]] = [("", self)]
        while stack:
            path, obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            if len(seen) > MAX_MODULES:
                raise ArchiveUnreadable(f"the module tree has over {MAX_MODULES:,} modules")
            yield path, obj
            children = [(f"{path}.{k}" if path else k, c) for k, c in obj.named_children()]
            stack.extend(reversed(children))


@dataclass
class _Storage:
    dtype: str
    data: np.ndarray  # one element per storage element (bfloat16 as its raw uint16 bits)


@dataclass
class _Tensor:
    array: np.ndarray
    dtype: str


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name


def read_weights(path: Path) -> ArchiveWeights:
    """The weights of the TorchScript archive at `path`, whose zip structure the caller has
    already checked (nnprobe.probe.zip_limits). Raises ArchiveUnreadable."""
    try:
        with zipfile.ZipFile(path) as archive:
            return _read(archive, path)
    except ArchiveUnreadable:
        raise
    except (RecursionError, MemoryError):
        raise ArchiveUnreadable("its module tree is too deeply nested or too large") from None
    except Exception as exc:  # a hostile pickle can put any object anywhere: all of it is refused
        raise ArchiveUnreadable(
            f"it is damaged, or not what torch.jit.save writes ({_first_line(exc)})"
        ) from None


def _read(archive: zipfile.ZipFile, path: Path) -> ArchiveWeights:
    names = {info.filename: info for info in archive.infolist()}
    pickles = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pickles) != 1:
        raise ArchiveUnreadable("the archive has no single top-level data.pkl")
    prefix = pickles[0].rsplit("/", 1)[0]
    order = names.get(f"{prefix}/byteorder")
    if order is not None and (order.file_size > 16 or archive.read(order).strip() != b"little"):
        raise ArchiveUnreadable("its tensors are stored big-endian")
    info = names[pickles[0]]
    if info.file_size > MAX_PICKLE:
        raise ArchiveUnreadable(
            f"its module tree's pickle is {info.file_size / 2**20:.1f} MiB (at most "
            f"{MAX_PICKLE // 2**20} MiB is read)"
        )
    unpickler = _Unpickler(BytesIO(archive.read(info)), archive, prefix, path)
    root = unpickler.load()
    if not isinstance(root, ScriptObject):
        raise ArchiveUnreadable("its data.pkl does not hold a module")
    return _collect(root, _Declarations(archive, names, prefix))


class _Unpickler(pickle.Unpickler):
    """data.pkl's globals as inert data; anything else refused before it is imported."""

    def __init__(
        self, file: BytesIO, archive: zipfile.ZipFile, prefix: str, path: Path | None
    ) -> None:
        super().__init__(file)
        self.path = path
        self.size = path.stat().st_size if path is not None else 0
        self.archive = archive
        self.prefix = prefix
        self.classes: dict[str, type[ScriptObject]] = {}
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "__torch__" or module.startswith("__torch__."):
            qualname = f"{module}.{name}"
            cls = self.classes.get(qualname)
            if cls is None:
                cls = type("ScriptObject", (ScriptObject,), {"qualname": qualname})
                self.classes[qualname] = cls
            return cls
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "collections" and name == "OrderedDict":
            return dict
        if module == "torch.jit._pickle" and name in _PASS_THROUGH:
            return _first
        raise ArchiveUnreadable(
            f"its module tree names {module}.{name}, which nnprobe does not read without running "
            "the archive"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ArchiveUnreadable("a tensor's storage record is not one torch.jit.save writes")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(numel, int) or numel < 0:
            raise ArchiveUnreadable("a tensor's storage record is not one torch.jit.save writes")
        key = str(key)
        if key in self.storages:
            return self.storages[key]
        dtype = _STORAGE_DTYPES[kind.name]
        raw_dtype = np.dtype("<u2") if dtype == "bfloat16" else np.dtype(dtype).newbyteorder("<")
        member = f"{self.prefix}/data/{key}"
        try:
            info = self.archive.getinfo(member)
        except KeyError:
            raise ArchiveUnreadable(f"its storage {key} is missing") from None
        if info.file_size < numel * raw_dtype.itemsize:
            raise ArchiveUnreadable(
                f"its storage {key} claims {numel:,} elements but holds {info.file_size:,} bytes"
            )
        data = self._member(info, raw_dtype, numel)
        storage = _Storage(dtype, data)
        self.storages[key] = storage
        return storage

    def _member(self, info: zipfile.ZipInfo, dtype: np.dtype[Any], count: int) -> np.ndarray:
        """A storage member's elements, memory-mapped (no copy of the weights). torch.jit.save
        stores storages uncompressed; a compressed one is refused rather than inflated, so a
        refused archive costs no memory beyond its own pages."""
        if info.compress_type != zipfile.ZIP_STORED or self.path is None:
            raise ArchiveUnreadable(f"its storage {info.filename} is compressed")
        with self.path.open("rb") as handle:
            handle.seek(info.header_offset)
            local = handle.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise ArchiveUnreadable(f"its storage {info.filename} has no local header")
        name_length, extra_length = struct.unpack("<HH", local[26:30])
        start = info.header_offset + 30 + name_length + extra_length
        if count == 0:
            return np.zeros(0, dtype=dtype)
        if start + count * dtype.itemsize > self.size:
            raise ArchiveUnreadable(f"its storage {info.filename} runs past the end of the file")
        return np.memmap(self.path, dtype=dtype, mode="r", offset=start, shape=(count,))


def _first(value: Any, *_: Any) -> Any:
    return value


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _Tensor:
    """torch._utils._rebuild_tensor_v2's arguments, checked against the storage they index."""
    if not isinstance(storage, _Storage) or not isinstance(storage.data, np.ndarray):
        raise ArchiveUnreadable("a tensor record is not one torch.jit.save writes")
    if not isinstance(offset, int) or offset < 0:
        raise ArchiveUnreadable("a tensor record is not one torch.jit.save writes")
    shape = _ints(size)
    steps = _ints(stride)
    if len(shape) != len(steps):
        raise ArchiveUnreadable("a tensor record's shape and strides disagree")
    count = math.prod(shape)
    available = storage.data.size
    if count == 0:
        array = np.zeros(shape, dtype=storage.data.dtype)
    else:
        extent = offset + sum((n - 1) * s for n, s in zip(shape, steps, strict=True)) + 1
        # An expanded view (stride 0) may name more elements than its storage holds: refused,
        # so a small file cannot become a large array here.
        if extent > available or count > available:
            raise ArchiveUnreadable(
                f"a tensor of shape {list(shape)} reaches past its storage of {available:,} "
                "elements"
            )
        item = storage.data.itemsize
        if steps == _contiguous(shape):
            array = np.asarray(storage.data[offset : offset + count]).reshape(shape)
        else:
            array = np.lib.stride_tricks.as_strided(
                storage.data[offset:], shape=shape, strides=[s * item for s in steps]
            ).copy()
    if storage.dtype == "bfloat16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    elif storage.dtype == "float16":
        array = array.astype(np.float32)
    return _Tensor(array, storage.dtype)


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    steps, step = [], 1
    for n in reversed(shape):
        steps.append(step)
        step *= max(n, 1)
    return tuple(reversed(steps))


def _ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise ArchiveUnreadable("a tensor record's shape is not a list of sizes")
    return tuple(value)


class _Declarations:
    """Each class's `__parameters__` and `__buffers__`, from its file under code/ (text only)."""

    def __init__(
        self, archive: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], prefix: str
    ) -> None:
        self.archive = archive
        self.names = names
        self.prefix = prefix
        self.texts: dict[str, str | None] = {}

    def of(self, qualname: str) -> tuple[list[str], list[str]] | None:
        module, _, cls = qualname.rpartition(".")
        text = self._text(f"{self.prefix}/code/{module.replace('.', '/')}.py")
        if text is None:
            return None
        block = re.search(rf"^class {re.escape(cls)}\(.*\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.M)
        if block is None:
            return None
        body = block.group(1)
        lists = []
        for key in ("__parameters__", "__buffers__"):
            line = re.search(rf"^[ \t]+{key} = \[(.*)\]", body, re.M)
            lists.append(_NAMES.findall(line.group(1)) if line else [])
        return lists[0], lists[1]

    def _text(self, member: str) -> str | None:
        if member not in self.texts:
            info = self.names.get(member)
            ok = info is not None and info.file_size <= MAX_CODE
            data = self.archive.read(info) if ok and info is not None else None
            self.texts[member] = data.decode("utf-8", "replace") if data is not None else None
        return self.texts[member]


def _collect(root: ScriptObject, declarations: _Declarations) -> ArchiveWeights:
    """Parameters then buffers of each module, modules in pre-order: state_dict's order."""
    tensors: dict[str, np.ndarray] = {}
    dtypes: dict[str, str] = {}
    unnamed: list[str] = []
    for path, module in root.named_modules():
        state = getattr(module, "state", None)
        if not isinstance(state, dict):
            if _holds_tensors(state):
                unnamed.append(path or "the root module")
            continue
        declared = declarations.of(str(module.qualname))
        if declared is None:  # no class file to say: every tensor attribute counts
            names = [k for k, v in state.items() if isinstance(v, _Tensor)]
        else:
            names = [*declared[0], *declared[1]]
        for name in names:
            value = state.get(name)
            if isinstance(value, _Tensor) and isinstance(value.array, np.ndarray):
                key = f"{path}.{name}" if path else str(name)
                tensors[key] = value.array
                dtypes[key] = str(value.dtype)
    return ArchiveWeights(tensors, dtypes, root, unnamed)


def _holds_tensors(state: Any) -> bool:
    if isinstance(state, _Tensor):
        return True
    if isinstance(state, tuple | list):
        return any(isinstance(v, _Tensor) for v in state)
    return False


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
