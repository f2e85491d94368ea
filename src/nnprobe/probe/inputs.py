"""Where a probe's inputs come from: a data file, arrays the caller already has, or synthetic
samples of the model's input shape.

Real inputs are better evidence than synthetic ones: a ReLU that never fires on Gaussian noise may
fire on real images. So every ProbeInputs says whether it is synthetic, and `describe()` gives the
phrase every activation finding quotes ("on 64 synthetic inputs", "on 500 inputs from digits.npz").

Files are read without unpickling anything: `.npz`/`.npy` with allow_pickle=False, `.pt` with
torch.load(weights_only=True), and never past what their headers promise (`load_probe_file`).
The batch axis is always the first one.

A configured callable (`probe = "train.py:probe_batch"`) imports workspace code, which only a
trusted workspace may do; whoever resolves it calls it and passes what it returns, `inputs` or
`(inputs, labels)`, to `ProbeInputs.from_arrays(..., source="train.py:probe_batch")`.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from nnprobe.core.reading import LIMITS, Unreadable, open_regular
from nnprobe.inspectors.activation_context import InputSummary
from nnprobe.probe.zip_limits import ArchiveRefused, checked_members

if TYPE_CHECKING:
    import numpy as np

DEFAULT_SYNTHETIC = 64
DEFAULT_SPATIAL = 32
DEFAULT_SEQUENCE = 16
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


class ProbeInputError(ValueError):
    """Probe inputs that cannot be used; the message is meant to be shown as is."""


@dataclass
class ProbeInputs:
    x: np.ndarray[Any, Any]
    y: np.ndarray[Any, Any] | None = None
    synthetic: bool = False
    source: str = "given inputs"
    note: str = ""  # how a synthetic shape was chosen

    @property
    def count(self) -> int:
        return int(self.x.shape[0])

    def describe(self) -> str:
        n = self.count
        noun = "input" if n == 1 else "inputs"
        if self.synthetic:
            return f"{n} synthetic {noun}"
        if self.source in ("", "given inputs"):
            return f"{n} probe {noun}"
        return f"{n} {noun} from {self.source}"

    @classmethod
    def from_arrays(
        cls, x: Any, y: Any = None, *, source: str = "given inputs", synthetic: bool = False
    ) -> ProbeInputs:
        """From numpy arrays or torch tensors (anything np.asarray accepts), batch axis first."""
        xs = _array(x, "inputs")
        if xs.ndim == 0:
            raise ProbeInputError("probe inputs must have a batch axis; got a scalar")
        if xs.shape[0] == 0:
            raise ProbeInputError("probe inputs are empty (0 samples)")
        ys = _array(y, "labels") if y is not None else None
        if ys is not None and ys.shape[:1] != xs.shape[:1]:
            raise ProbeInputError(
                f"{xs.shape[0]} inputs but {ys.shape[0] if ys.ndim else 1} labels"
            )
        if xs.dtype.kind == "f" and xs.dtype.itemsize != 4:
            xs = xs.astype("float32")
        if xs.dtype.kind not in "fiub":
            raise ProbeInputError(f"probe inputs must be numbers, got dtype {xs.dtype}")
        return cls(xs, ys, synthetic=synthetic, source=source)

    def summary(self) -> InputSummary:
        from nnprobe.probe.stats import input_summary_numbers

        mean, std, lo, hi, nonfinite = input_summary_numbers(self.x)
        return InputSummary(
            samples=self.count,
            shape=tuple(int(d) for d in self.x.shape[1:]),
            mean=mean,
            std=std,
            min=lo,
            max=hi,
            synthetic=self.synthetic,
            integer=self.x.dtype.kind in "iub",
            nonfinite=nonfinite,
        )


def _array(value: Any, what: str) -> np.ndarray[Any, Any]:
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as exc:
        raise ProbeInputError(f"cannot use the {what} as an array ({exc})") from None


def load_probe_file(path: Path | str, roots: Iterable[Path] | None = None) -> ProbeInputs:
    """Inputs (and labels) from `.npz` (arrays `x`, optional `y`), `.npy`, or a weights-only `.pt`
    holding a tensor, a dict with `x`/`y`, or an `(x, y)` pair.

    The file is opened with the guarded reader (a regular file of at most LIMITS["probe-data"]
    bytes that no link leads out of `roots` to reach, when given) and checked before anything is
    allocated: a zip's directory against zip_limits (an `.npz` or torch.save archive that would
    inflate far past its size), each `.npy` header's shape x dtype against the bytes that hold
    it and against the same cap."""
    path = Path(path)
    suffix = path.suffix.lower()
    name = path.name
    if suffix not in (".npz", ".npy", ".pt", ".pth"):
        raise ProbeInputError(f"probe data must be .npz, .npy or .pt, not {suffix or name!r}")
    try:
        handle = open_regular(path, what="probe data", limit=LIMITS["probe-data"], roots=roots)
    except Unreadable as exc:
        raise ProbeInputError(exc.message) from None
    with handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            if suffix == ".npz":
                x, y = _load_npz(handle, size, name)
            elif suffix == ".npy":
                x, y = _load_npy(handle, size, name), None
            else:
                x, y = _load_torch(handle, size, name)
        except ProbeInputError:
            raise
        except ArchiveRefused as exc:
            raise ProbeInputError(f"probe data {name}: {exc}") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ProbeInputError(f"cannot read probe data {name}: {exc}") from None
    return ProbeInputs.from_arrays(x, y, source=name)


def _load_npz(handle: BinaryIO, size: int, name: str) -> tuple[Any, Any]:
    import numpy as np

    members = checked_members(handle, size)
    keys = [m[: -len(".npy")] for m in members if m.endswith(".npy")]
    if "x" in keys:
        wanted = ["x", "y"] if "y" in keys else ["x"]
    elif len(keys) == 1:
        wanted = keys
    else:
        raise ProbeInputError(f"{name} has arrays {', '.join(keys)} but no 'x' (inputs) array")
    with zipfile.ZipFile(handle) as archive:
        declared = 0
        for key in wanted:
            info = archive.getinfo(f"{key}.npy")
            with archive.open(info) as member:
                declared += _declared_bytes(member, info.file_size, f"{name}'s array {key!r}")
            _check_total(declared, name)
    handle.seek(0)
    with np.load(handle, allow_pickle=False) as data:
        x = data[wanted[0]]
        y = data["y"] if len(wanted) > 1 else None
    return x, y


def _load_npy(handle: BinaryIO, size: int, name: str) -> Any:
    import numpy as np

    _check_total(_declared_bytes(handle, size, name), name)
    handle.seek(0)
    return np.load(handle, allow_pickle=False)


def _declared_bytes(stream: Any, size: int, what: str) -> int:
    """The data bytes an .npy header at the start of `stream` (of `size` bytes) declares, refused
    when they would not fit in the bytes that follow it: numpy allocates the whole array from
    the header before it reads the data."""
    import numpy as np

    fmt = np.lib.format
    version = fmt.read_magic(stream)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _, dtype = fmt.read_array_header_2_0(stream)
    else:
        shape, _, dtype = fmt._read_array_header(stream, version)
    if dtype.hasobject:
        raise ProbeInputError(f"cannot read {what}: it holds Python objects, a pickle: not read")
    declared = math.prod(int(d) for d in shape) * dtype.itemsize
    available = size - stream.tell()
    if declared > available:
        raise ProbeInputError(
            f"{what} declares shape {tuple(shape)} of {dtype} ({_size(declared)}) but holds "
            f"{_size(max(available, 0))}: refused before allocating it"
        )
    return declared


def _check_total(declared: int, name: str) -> None:
    limit = LIMITS["probe-data"]
    if declared > limit:
        raise ProbeInputError(
            f"probe data {name} declares {_size(declared)} of arrays, over the {_size(limit)} "
            "nnprobe reads for probe data: refused before allocating it"
        )


def _load_torch(handle: BinaryIO, size: int, name: str) -> tuple[Any, Any]:
    try:
        import torch
    except ImportError:
        raise ProbeInputError(
            f"reading {name} needs torch (pip install 'nnprobe[probe]')"
        ) from None
    if handle.read(4) in _ZIP_MAGIC:
        checked_members(handle, size)  # torch inflates each record at its declared size
    handle.seek(0)
    try:
        data = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ProbeInputError(
            f"cannot read {name} with weights_only=True ({type(exc).__name__}: {exc})"
        ) from None
    if isinstance(data, torch.Tensor):
        return data, None
    if isinstance(data, dict):
        for xk, yk in (("x", "y"), ("inputs", "labels"), ("input", "target"), ("data", "target")):
            if xk in data:
                return data[xk], data.get(yk)
        raise ProbeInputError(f"{name} is a dict without an 'x' entry")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data[0], data[1]
    raise ProbeInputError(f"{name} holds a {type(data).__name__}, not a tensor or (x, y)")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{count} bytes" if count < 1024 else f"{value:.1f} {unit}"
    return f"{count} bytes"


def parse_shape(text: str) -> tuple[int, ...]:
    """`"3,32,32"` (or `3x32x32`) -> (3, 32, 32): the shape of one sample, without the batch."""
    parts = [p for p in text.replace("x", ",").replace(" ", "").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise ProbeInputError(f"input shape {text!r} must be integers like 3,32,32") from None
    if not shape or any(d <= 0 for d in shape):
        raise ProbeInputError(f"input shape {text!r} must be positive integers like 3,32,32")
    return shape


def synthetic_inputs(
    shape: tuple[int, ...],
    count: int = DEFAULT_SYNTHETIC,
    *,
    seed: int = 0,
    integer_high: int | None = None,
    note: str = "",
) -> ProbeInputs:
    """Seeded standard-normal samples (what a normalised input looks like), or token ids in
    [0, integer_high) for a model that starts with an embedding."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if integer_high is not None:
        x = rng.integers(0, integer_high, size=(count, *shape), dtype=np.int64)
    else:
        x = rng.standard_normal((count, *shape), dtype=np.float32)
    return ProbeInputs(x, None, synthetic=True, source="synthetic", note=note)


@dataclass(frozen=True)
class InputSpec:
    shape: tuple[int, ...]
    integer_high: int | None = None
    note: str = ""


def spec_from_module(module: Any) -> InputSpec | None:
    """The input shape the model's first layer implies (spatial and sequence sizes assumed)."""
    for name, sub in module.named_modules():
        cls = type(sub).__name__
        where = name or "the model"
        if cls in ("Linear", "Bilinear", "LazyLinear") and hasattr(sub, "in_features"):
            return InputSpec((int(sub.in_features),), note=f"from {where}.in_features")
        if cls.startswith("Conv") and hasattr(sub, "in_channels"):
            dims = 1 if cls.endswith("1d") else 3 if cls.endswith("3d") else 2
            size = {1: 64, 2: DEFAULT_SPATIAL, 3: 16}[dims]
            shape = (int(sub.in_channels),) + (size,) * dims
            return InputSpec(shape, note=f"{where}.in_channels, spatial size {size} assumed")
        if cls in ("LSTM", "GRU", "RNN") and hasattr(sub, "input_size"):
            shape = (DEFAULT_SEQUENCE, int(sub.input_size))
            return InputSpec(shape, note=f"{where}.input_size, {DEFAULT_SEQUENCE} steps assumed")
        if cls == "Embedding" and hasattr(sub, "num_embeddings"):
            return InputSpec(
                (DEFAULT_SEQUENCE,),
                integer_high=int(sub.num_embeddings),
                note=f"token ids below {where}.num_embeddings, {DEFAULT_SEQUENCE} tokens assumed",
            )
        if cls in ("TransformerEncoderLayer", "TransformerEncoder", "MultiheadAttention"):
            width = _model_width(sub)
            if width is not None:
                shape = (DEFAULT_SEQUENCE, width)
                return InputSpec(shape, note=f"{where} width, {DEFAULT_SEQUENCE} tokens assumed")
    return None


def _model_width(sub: Any) -> int | None:
    for attr in ("embed_dim", "d_model"):
        if hasattr(sub, attr):
            return int(getattr(sub, attr))
    for child in sub.modules():
        if hasattr(child, "embed_dim"):
            return int(child.embed_dim)
    return None


def spec_from_signature(shape: tuple[int | str | None, ...], dtype: str = "float32") -> InputSpec:
    """From an ONNX input signature: the batch axis dropped, symbolic sizes set to 16."""
    dims = list(shape[1:])
    guessed = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
    concrete = tuple(d if isinstance(d, int) and d > 0 else DEFAULT_SEQUENCE for d in dims)
    note = "from the model's input signature"
    if guessed:
        note += f", symbolic sizes set to {DEFAULT_SEQUENCE}"
    high = 2 if dtype.startswith(("int", "uint")) else None
    return InputSpec(concrete, integer_high=high, note=note)
