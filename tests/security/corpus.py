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

from nnprobe.probe.zip_limits import MAX_MEMBERS


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


def _torch_members(folder: Path) -> list[tuple[str, bytes]]:
    """The members of a real torch.save archive of a small state_dict."""
    source = folder / "_source.pt"
    torch.save({"fc.weight": torch.zeros(2, 4)}, source)
    with zipfile.ZipFile(source) as archive:
        members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    source.unlink()
    return members


def deflate_bomb(member: str, inflated: int) -> Callable[[Path, Path], Path]:
    """A torch.save archive whose member ending in `member` (data.pkl, a tensor record) is
    `inflated` zero bytes, deflated: about 1000 to 1 (1 GiB in 1 MiB)."""

    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / f"bomb_{member.rsplit('/', 1)[-1]}_{inflated >> 20}MiB.pt"
        chunk = bytes(2**20)
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in _torch_members(folder):
                if not name.endswith(member):
                    archive.writestr(name, data)
                    continue
                info = zipfile.ZipInfo(name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(info, "w", force_zip64=True) as handle:
                    for start in range(0, inflated, len(chunk)):
                        handle.write(chunk[: inflated - start])
        return path

    return build


def declared_huge(folder: Path, sentinel: Path) -> Path:
    """A real torch.save archive whose central directory says data.pkl is 4 GiB."""
    path = folder / "declared_huge.pt"
    torch.save({"fc.weight": torch.zeros(2, 4)}, path)
    data = bytearray(path.read_bytes())
    entry = data.find(b"PK\x01\x02")
    while entry >= 0:
        name_length = struct.unpack_from("<H", data, entry + 28)[0]
        if data[entry + 46 : entry + 46 + name_length].endswith(b"data.pkl"):
            struct.pack_into("<I", data, entry + 24, 0xFFFFFFF0)
        entry = data.find(b"PK\x01\x02", entry + 46)
    path.write_bytes(bytes(data))
    return path


def many_members(count: int) -> Callable[[Path, Path], Path]:
    """A stored zip of `count` empty members (below zip64's 65535), written byte by byte."""

    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / f"many_{count}.pt"
        local, central = bytearray(), bytearray()
        for i in range(count):
            name = f"a/{i}".encode()
            central += (
                struct.pack(
                    "<4s6H3I5HII",
                    b"PK\x01\x02",
                    20,
                    20,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    len(name),
                    0,
                    0,
                    0,
                    0,
                    0,
                    len(local),
                )
                + name
            )
            local += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
            local += name
        end = struct.pack(
            "<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(central), len(local), 0
        )
        path.write_bytes(bytes(local + central + end))
        return path

    return build


BOMB = 96 * 2**20  # inflated bytes: above zip_limits.MIN_BUDGET, about 100 KiB on disk
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
    Hostile("deflate-bomb-data-pkl", "NP901", "zip bomb", deflate_bomb("data.pkl", BOMB)),
    Hostile("deflate-bomb-tensor", "NP901", "zip bomb", deflate_bomb("data/0", BOMB)),
    Hostile("declared-4-gib", "NP901", "zip bomb", declared_huge),
    Hostile("too-many-members", "NP901", "members", many_members(MAX_MEMBERS + 1)),
    Hostile("truncated-zip", "NP901", "zip archive", truncated_zip),
]
