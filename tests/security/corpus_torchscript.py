"""Hostile TorchScript archives: real `torch.jit.script(...).save(...)` programs whose code runs
at `torch.jit.load` (a scripted `__setstate__`) or in `forward`, and crafted archives aimed at the
reader that takes their weights without running them.

Every payload that runs creates the sentinel (`torch.save` from TorchScript is `aten::save`: it
writes any path it is given). The sentinel's path is a module attribute, so it sits in the pickled
state, not in the compiled code: one compiled class serves every build.
"""

from __future__ import annotations

import collections
import os
import pickle
import sys
import types
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from corpus import Hostile
from torch import nn

PWNED = "::error::pwned"  # a GitHub workflow command: on nnprobe's stdout it would annotate the PR


class SavesOnLoad(nn.Module):
    """`__setstate__` writes the sentinel and prints a workflow command, then restores itself."""

    def __init__(self, sentinel: str) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 4) * 0.5)
        self.sentinel = sentinel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight)

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.weight, self.sentinel, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        torch.save(torch.zeros(1), state[1])
        print("::error::pwned")
        self.weight = state[0]
        self.sentinel = state[1]
        self.training = state[2]


class LoopsOnLoad(nn.Module):
    """`__setstate__` writes the sentinel, then loops (for all practical purposes) forever."""

    def __init__(self, sentinel: str) -> None:
        super().__init__()
        self.sentinel = sentinel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.sentinel, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        torch.save(torch.zeros(1), state[0])
        i = 0
        while i >= 0:
            i += 1
        self.sentinel = state[0]
        self.training = state[1]


class AllocatesOnLoad(nn.Module):
    """`__setstate__` writes the sentinel, then asks for 8 GB."""

    def __init__(self, sentinel: str) -> None:
        super().__init__()
        self.sentinel = sentinel
        self.big = torch.zeros(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.big

    @torch.jit.export
    def __getstate__(self) -> tuple[str, bool]:
        return (self.sentinel, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]) -> None:
        torch.save(torch.zeros(1), state[0])
        self.big = torch.ones(2_000_000_000)
        self.sentinel = state[0]
        self.training = state[1]


class ReadsOnLoad(nn.Module):
    """`__setstate__` reads a file outside the workspace into its weight (aten::from_file)."""

    def __init__(self, sentinel: str, secret: str) -> None:
        super().__init__()
        self.weight = torch.zeros(2, 4)
        self.sentinel = sentinel
        self.secret = secret

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weight)

    @torch.jit.export
    def __getstate__(self) -> tuple[str, str, bool]:
        return (self.sentinel, self.secret, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, str, bool]) -> None:
        torch.save(torch.zeros(1), state[0])
        self.weight = torch.from_file(state[1], size=8).view(2, 4)
        self.sentinel = state[0]
        self.secret = state[1]
        self.training = state[2]


class WritesInForward(nn.Module):
    """A plain archive (its weights read fine) whose forward writes the sentinel."""

    def __init__(self, sentinel: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.sentinel = sentinel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.sentinel)
        return torch.relu(self.fc(x))


class LoopsInForward(nn.Module):
    """A plain archive whose forward writes the sentinel, then loops."""

    def __init__(self, sentinel: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.sentinel = sentinel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.sentinel)
        i = 0
        while i >= 0:
            i += 1
        return self.fc(x)


def scripted(make: Callable[[Path, Path], nn.Module], name: str) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / name
        torch.jit.script(make(folder, sentinel)).save(str(path))
        return path

    return build


def _secret(folder: Path) -> str:
    outside = folder / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "secret.bin"
    secret.write_bytes(torch.arange(8, dtype=torch.float32).numpy().tobytes())
    return str(secret)


def archive(name: str, module: Callable[[str], nn.Module], file: str) -> Hostile:
    """A scripted `module(sentinel)` saved as `file`: refused unrun with NP902."""
    return Hostile(name, "NP902", "TorchScript", scripted(lambda f, s: module(str(s)), file))


# ------------------------------------------------------------- crafted archives (reader attacks)


class _Storage:
    def __init__(self, numel: int) -> None:
        self.numel = numel


class _Tensor:
    def __init__(self, storage: _Storage, size: tuple[int, ...]) -> None:
        self.storage = storage
        self.size = size


class _Call:
    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.function, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: object) -> object:
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, "0", "cpu", obj.numel)
        return None

    def reducer_override(self, obj: object) -> Any:
        if isinstance(obj, _Tensor):
            stride = tuple(1 for _ in obj.size)
            hooks = collections.OrderedDict()  # type: ignore[var-annotated]
            return (
                torch._utils._rebuild_tensor_v2,
                (obj.storage, 0, obj.size, stride, False, hooks),
            )
        return NotImplemented


def crafted(
    name: str, state: Callable[[Path], dict[str, object]], compress: int = zipfile.ZIP_STORED
) -> Callable[[Path, Path], Path]:
    """A TorchScript-shaped zip (code/, constants.pkl, data.pkl, data/0) whose data.pkl is written
    here: a `__torch__.Net` object with `state(sentinel)` as its attributes."""

    def build(folder: Path, sentinel: Path) -> Path:
        module = types.ModuleType("__torch__")
        net = type("Net", (), {"__module__": "__torch__"})
        module.Net = net  # type: ignore[attr-defined]
        saved = sys.modules.get("__torch__")
        sys.modules["__torch__"] = module
        try:
            obj = net()
            obj.__dict__.update(state(sentinel))
            buffer = __import__("io").BytesIO()
            _Pickler(buffer, protocol=2).dump(obj)
        finally:
            if saved is None:
                del sys.modules["__torch__"]
            else:
                sys.modules["__torch__"] = saved
        path = folder / name
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("net/data.pkl", buffer.getvalue())
            archive.writestr("net/constants.pkl", pickle.dumps((), protocol=2))
            archive.writestr("net/code/__torch__.py", "class Net(Module):\n  __parameters__ = []\n")
            archive.writestr("net/data/0", bytes(16), compress_type=compress)
            archive.writestr("net/version", "3\n")
        return path

    return build


def _gadget(sentinel: Path) -> dict[str, object]:
    return {"w": _Call(os.system, f"touch '{sentinel}'")}


def _storage_lies(sentinel: Path) -> dict[str, object]:
    """A weight of 10^12 floats over a storage of 4: 4 TB if believed."""
    return {"w": _Tensor(_Storage(10**12), (10**6, 10**6))}


def _fits(sentinel: Path) -> dict[str, object]:
    return {"w": _Tensor(_Storage(4), (2, 2))}


def _name_lies(sentinel: Path) -> dict[str, object]:
    return {"w": _Tensor(_Storage(4), (1000, 1000))}


CASES = [
    archive("torchscript-setstate-saves-and-prints", SavesOnLoad, "scripted.pt"),
    *(
        archive(f"torchscript-named{suffix}", SavesOnLoad, f"model{suffix}")
        for suffix in (".pth", ".ckpt", ".bin", ".onnx", ".safetensors")
    ),
    archive("torchscript-setstate-loops", LoopsOnLoad, "looping.pt"),
    archive("torchscript-setstate-allocates-8gb", AllocatesOnLoad, "huge.pt"),
    Hostile(
        "torchscript-setstate-reads-outside",
        "NP902",
        "TorchScript",
        scripted(lambda f, s: ReadsOnLoad(str(s), _secret(f)), "reads.ckpt"),
    ),
    archive("torchscript-forward-writes", WritesInForward, "forward.pt"),
    archive("torchscript-forward-loops", LoopsInForward, "forward_loops.pt"),
    Hostile("torchscript-data-pkl-gadget", "NP902", "posix.system", crafted("gadget.pt", _gadget)),
    Hostile(
        "torchscript-storage-lies", "NP902", "holds 16 bytes", crafted("lies.pt", _storage_lies)
    ),
    Hostile(
        "torchscript-compressed-storage",
        "NP902",
        "is compressed",
        crafted("deflated.pt", _fits, zipfile.ZIP_DEFLATED),
    ),
    Hostile(
        "torchscript-shape-past-storage", "NP902", "reaches past", crafted("past.pt", _name_lies)
    ),
]
