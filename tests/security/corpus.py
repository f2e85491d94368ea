"""The hostile-file corpus: files nnprobe may be asked to look at and must refuse without running.

Each builder takes (folder, sentinel) and writes one file whose payload, if it ever ran, would
create the sentinel; or which points outside the model's folder for its data. Shared by the
security tests and by bench/pickle_scan_bench.py, which measures pickle scanners on the same files.
"""

from __future__ import annotations

import builtins
import json
import pickle
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from onnx import TensorProto, helper
from torch import nn


class Payload:
    """Unpickling this opens (so creates) the sentinel file: code ran."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = str(sentinel)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (self.sentinel, "w"))


class FullModel(nn.Module):
    """A model pickled whole instead of its state_dict; unpickling it would open the sentinel."""

    def __init__(self, sentinel: Path) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.hook = Payload(sentinel)


@dataclass(frozen=True)
class Hostile:
    name: str
    code: str
    says: str  # a phrase the finding's message must hold
    build: Callable[[Path, Path], Path]  # (folder, sentinel) -> the file
    imports: tuple[str, ...] = ()  # the non-torch globals an opted-in load would import


def raw_pickle(protocol: int) -> Callable[[Path, Path], Path]:
    """A bare `pickle.dump` of the payload named like a checkpoint (no torch framing at all)."""

    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / "evil_raw.pt"
        path.write_bytes(pickle.dumps(Payload(sentinel), protocol=protocol))
        return path

    return build


def torch_saved(suffix: str) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / f"evil{suffix}"
        torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Payload(sentinel)}, path)
        return path

    return build


def fake_state_dict(folder: Path, sentinel: Path) -> Path:
    path = folder / "model_state_dict.pth"
    torch.save(FullModel(sentinel), path)
    return path


def onnx_external(location: Callable[[Path], str]) -> Callable[[Path, Path], Path]:
    """An ONNX model whose one initializer's data lives at `location` (outside its folder)."""

    def build(folder: Path, sentinel: Path) -> Path:
        outside = folder / "outside"
        outside.mkdir(exist_ok=True)
        secret = outside / "secret.bin"
        secret.write_bytes(np.arange(4, dtype=np.float32).tobytes())
        models = folder / "workspace" / "models"
        models.mkdir(parents=True, exist_ok=True)
        weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2, 2])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location(secret)), ("offset", "0"), ("length", "16")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["x", "W"], ["y"])],
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
            [weight],
        )
        path = models / "model.onnx"
        path.write_bytes(helper.make_model(graph).SerializeToString())
        return path

    return build


def symlinked_data(folder: Path, sentinel: Path) -> Path:
    """External data named inside the folder, but a symlink to a file outside it."""
    path = onnx_external(lambda secret: "weights.bin")(folder, sentinel)
    (path.parent / "weights.bin").symlink_to(folder / "outside" / "secret.bin")
    return path


def lying_safetensors(header: dict[str, object], data: bytes) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        raw = json.dumps(header).encode()
        path = folder / "lying.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
        return path

    return build


def empty_zip(folder: Path, sentinel: Path) -> Path:
    path = folder / "empty.pt"
    with zipfile.ZipFile(path, "w"):
        pass
    return path


def truncated_zip(folder: Path, sentinel: Path) -> Path:
    path = folder / "truncated.ckpt"
    torch.save({"w": torch.zeros(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


class ShellPayload:
    """Unpickling this runs a shell command (os.system, pickled as posix.system) that creates the
    sentinel: the classic payload model scanners look for."""

    def __init__(self, sentinel: Path) -> None:
        self.command = f"touch '{sentinel}'"

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (self.command,))


def shell_in_ckpt(folder: Path, sentinel: Path) -> Path:
    """A Lightning-looking .ckpt whose callbacks entry runs a shell command when unpickled."""
    path = folder / "evil_shell.ckpt"
    state = {"fc.weight": torch.zeros(2, 4)}
    torch.save({"state_dict": state, "epoch": 3, "callbacks": ShellPayload(sentinel)}, path)
    return path


OPEN = ("io.open",)  # builtins.open is io.open, and pickles under that name
FLOATS = np.zeros(4, dtype=np.float32).tobytes()
CORPUS = [
    *(Hostile(f"raw-pickle-protocol-{n}", "NP902", "open", raw_pickle(n), OPEN) for n in (2, 4, 5)),
    Hostile("pickle-in-pt", "NP902", "refused to unpickle", torch_saved(".pt"), OPEN),
    Hostile("pickle-in-pth", "NP902", "refused to unpickle", torch_saved(".pth"), OPEN),
    Hostile("pickle-in-ckpt", "NP902", "refused to unpickle", torch_saved(".ckpt"), OPEN),
    Hostile(
        "state-dict-is-a-model",
        "NP902",
        "whole pickled model",
        fake_state_dict,
        (f"{__name__}.FullModel", *OPEN),
    ),
    Hostile("shell-in-ckpt", "NP902", "posix.system", shell_in_ckpt, ("posix.system",)),
    Hostile(
        "onnx-dotdot", "NP901", "external data", onnx_external(lambda s: "../../outside/secret.bin")
    ),
    Hostile("onnx-absolute", "NP901", "external data", onnx_external(str)),
    Hostile("onnx-symlink", "NP901", "external data", symlinked_data),
    Hostile(
        "safetensors-past-end",
        "NP901",
        "safetensors",
        lying_safetensors({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 4096]}}, FLOATS),
    ),
    Hostile(
        "safetensors-size-mismatch",
        "NP901",
        "safetensors",
        lying_safetensors({"w": {"dtype": "F32", "shape": [64], "data_offsets": [0, 16]}}, FLOATS),
    ),
    Hostile(
        "safetensors-overlap",
        "NP901",
        "safetensors",
        lying_safetensors(
            {
                "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            },
            FLOATS,
        ),
    ),
    Hostile("empty-zip", "NP901", "zip archive", empty_zip),
    Hostile("truncated-zip", "NP901", "zip archive", truncated_zip),
]
