"""Hostile probe data, ONNX graphs and files the language server places findings on.

Probe-data cases write a tiny ONNX model (no workspace code needed to probe it), a pyproject.toml
whose `probe = ...` names the hostile data file, and that file; the path to inspect is the model.
Bombs are built from repeated deflate blocks, so each is a few MB on disk and built in
milliseconds, however much it would inflate to; huge files are sparse.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from corpus import Hostile, many_members
from onnx import TensorProto, helper, numpy_helper

from nnprobe.probe.zip_limits import MAX_MEMBERS

GiB = 2**30
NODES = 200_000  # the attacker's ONNX: a 5 MB graph of this many nodes


def mlp_onnx(path: Path) -> Path:
    """A 4 -> 8 Gemm + ReLU: something to probe that needs neither torch nor workspace code."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "fc1.weight")
    bias = numpy_helper.from_array(np.zeros(8, np.float32), "fc1.bias")
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], "/fc1/Gemm", transB=1),
            helper.make_node("Relu", ["h"], ["y"], "/act/Relu"),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])],
        [weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def npy_header(shape: tuple[int, ...], dtype: str = "<f4") -> bytes:
    """An .npy version 1.0 header for `shape` of `dtype`, padded as numpy pads it."""
    text = f"{{'descr': '{dtype}', 'fortran_order': False, 'shape': {shape!r}, }}"
    pad = 64 - (10 + len(text) + 1) % 64
    text += " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1")


def zeros_deflated(count: int) -> bytes:
    """A raw deflate stream of `count` zero bytes (a multiple of 1 MiB), made of one compressed
    MiB repeated: after a full flush a block refers to nothing before it."""
    block = 2**20
    assert count % block == 0
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(bytes(block)) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert first == again
    return first * (count // block) + compressor.flush(zlib.Z_FINISH)


def raw_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """A zip of (name, stored bytes, method, crc, uncompressed size) members, written as is: the
    sizes in its directory are whatever the caller says (below 4 GiB: no zip64)."""
    local, central = bytearray(), bytearray()
    for name, data, method, crc, size in members:
        encoded = name.encode()
        offset = len(local)
        local += struct.pack(
            "<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(data), size, len(encoded), 0
        )
        local += encoded + data
        central += struct.pack(
            "<4s6H3I5HII",
            b"PK\x01\x02",
            20,
            20,
            0,
            method,
            0,
            0,
            crc,
            len(data),
            size,
            len(encoded),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += encoded
    count = len(members)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path


def probe_case(name: str, write: Callable[[Path], str]) -> Callable[[Path, Path], Path]:
    """A model plus a pyproject.toml whose `probe` is what `write(folder)` returns."""

    def build(folder: Path, sentinel: Path) -> Path:
        probe = write(folder)
        (folder / "pyproject.toml").write_text(f'[tool.nnprobe]\nprobe = "{probe}"\n')
        return mlp_onnx(folder / f"{name}.onnx")

    return build


def npz_deflate_bomb(folder: Path) -> str:
    """An .npz whose x.npy is a true 2 GiB of float32 zeros, deflated to about 2 MB."""
    data = 2 * GiB
    header = npy_header((data // 4,))
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    stream = compressor.compress(header) + compressor.flush(zlib.Z_FULL_FLUSH)
    stream += zeros_deflated(data)
    crc = zlib.crc32(header)  # of the header only: the bomb goes off before any CRC check
    raw_zip(folder / "bomb.npz", [("x.npy", stream, 8, crc, len(header) + data)])
    return "bomb.npz"


def npz_header_lies(folder: Path) -> str:
    """An .npz whose x.npy header declares 64 GiB in a member that holds 4 floats."""
    data = npy_header((16 * GiB,)) + np.zeros(4, np.float32).tobytes()
    raw_zip(folder / "lies.npz", [("x.npy", data, 0, zlib.crc32(data), len(data))])
    return "lies.npz"


def npy_header_lies(folder: Path) -> str:
    """A 144-byte .npy whose header declares 4 TiB of float32."""
    (folder / "lies.npy").write_bytes(npy_header((2**40,)) + bytes(16))
    return "lies.npy"


def npy_objects(folder: Path) -> str:
    (folder / "objects.npy").write_bytes(npy_header((2,), "|O") + b"\x80\x04N.")
    return "objects.npy"


def pt_deflate_bomb(folder: Path) -> str:
    """A torch.save archive of a small tensor whose record data/0 inflates to 2 GiB (torch's
    reader allocates a record at its declared size and inflates it whole)."""
    import torch

    source = folder / "_source.pt"
    torch.save(torch.zeros(2, 4), source)
    import zipfile

    members = []
    with zipfile.ZipFile(source) as archive:
        for info in archive.infolist():
            data = archive.read(info)
            if info.filename.endswith("data/0"):
                stream = zeros_deflated(2 * GiB)
                members.append((info.filename, stream, 8, 0, 2 * GiB))
            else:
                members.append((info.filename, data, 0, zlib.crc32(data), len(data)))
    source.unlink()
    raw_zip(folder / "bomb.pt", members)
    return "bomb.pt"


def npz_many_members(folder: Path) -> str:
    many_members(MAX_MEMBERS + 1)(folder, folder / "unused")
    os.replace(folder / f"many_{MAX_MEMBERS + 1}.pt", folder / "many.npz")
    return "many.npz"


def outside_dotdot(folder: Path) -> str:
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir(exist_ok=True)
    np.savez(outside / "secret.npz", x=np.full((16, 4), 7.0, np.float32))
    return f"../{outside.name}/secret.npz"


def outside_link(folder: Path) -> str:
    outside = folder.parent / f"{folder.name}-outside"
    outside.mkdir(exist_ok=True)
    np.savez(outside / "secret.npz", x=np.full((16, 4), 7.0, np.float32))
    (folder / "data.npz").symlink_to(outside / "secret.npz")
    return "data.npz"


def fifo(folder: Path) -> str:
    os.mkfifo(folder / "probe.npz")
    return "probe.npz"


def device_link(folder: Path) -> str:
    (folder / "probe.npy").symlink_to("/dev/zero")
    return "probe.npy"


def sparse_npy(folder: Path) -> str:
    """A 2 GiB .npy (sparse on disk) that is honest about its size: over the probe-data cap."""
    path = folder / "huge.npy"
    with path.open("wb") as handle:
        handle.write(npy_header((GiB // 2,)))
        handle.truncate(len(npy_header((GiB // 2,))) + 2 * GiB)
    return "huge.npy"


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _chain(count: int) -> tuple[bytes, bytes]:
    """(the encoded NodeProto fields of a chain of `count` Relu nodes v0 -> v1 -> ..., the
    encoded rest of its graph: input v0, output v<count>), built as bytes: making `count`
    NodeProto objects would take seconds."""
    graph = helper.make_graph(
        [],
        "chain",
        [helper.make_tensor_value_info("v0", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info(f"v{count}", TensorProto.FLOAT, ["N", 4])],
    )
    nodes = []
    for i in range(count):
        a, b = b"v%d" % i, b"v%d" % (i + 1)  # names under 128 bytes: one-byte lengths
        inner = b'\n%c%s\x12%c%s"\x04Relu' % (len(a), a, len(b), b)
        nodes.append(b"\n" + _varint(len(inner)) + inner)
    return b"".join(nodes), graph.SerializeToString()


def _model(graph: bytes) -> bytes:
    model = helper.make_model(helper.make_graph([], "g", [], []))
    model.ClearField("graph")
    model.ClearField("opset_import")
    model.opset_import.append(helper.make_opsetid("", 17))
    model.ir_version = 8
    return model.SerializeToString() + _field(7, graph)


def onnx_many_nodes(folder: Path, sentinel: Path) -> Path:
    """A chain of NODES Relu nodes: 5 MB of protobuf."""
    nodes, rest = _chain(NODES)
    path = folder / "many_nodes.onnx"
    path.write_bytes(_model(nodes + rest))
    return path


def onnx_nested_nodes(folder: Path, sentinel: Path) -> Path:
    """One top-level If node whose then-branch holds the NODES-node chain: a cap on the top
    graph's node list alone would not see them."""
    nodes, rest = _chain(NODES)
    branch = _field(1, b"then_branch") + _field(6, nodes + rest) + _varint(20 << 3) + _varint(5)
    node = _field(1, b"cond") + _field(2, b"v%d" % NODES) + _field(4, b"If") + _field(5, branch)
    outer = helper.make_graph(
        [],
        "nested",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info(f"v{NODES}", TensorProto.FLOAT, ["N", 4])],
    )
    path = folder / "nested_nodes.onnx"
    path.write_bytes(_model(_field(1, node) + outer.SerializeToString()))
    return path


def sparse_checkpoint(folder: Path, sentinel: Path) -> Path:
    """A 6 GiB checkpoint of zeros (sparse: nothing on disk), as a download cut short leaves."""
    path = folder / "huge.pt"
    with path.open("wb") as handle:
        handle.truncate(6 * GiB)
    return path


def log_to_device(folder: Path, sentinel: Path) -> Path:
    path = folder / "metrics.csv"
    path.symlink_to("/dev/zero")
    return path


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


CASES = [
    Hostile("probe-npz-deflate-bomb", "NP901", "zip bomb", probe_case("npzbomb", npz_deflate_bomb)),
    Hostile(
        "probe-npz-header-lies",
        "NP901",
        "refused before allocating",
        probe_case("npzlies", npz_header_lies),
    ),
    Hostile(
        "probe-npy-header-lies",
        "NP901",
        "refused before allocating",
        probe_case("npylies", npy_header_lies),
    ),
    Hostile("probe-npy-objects", "NP901", "Python objects", probe_case("npyobj", npy_objects)),
    Hostile("probe-pt-deflate-bomb", "NP901", "zip bomb", probe_case("ptbomb", pt_deflate_bomb)),
    Hostile("probe-npz-many-members", "NP901", "members", probe_case("npzmany", npz_many_members)),
    Hostile(
        "probe-outside-dotdot",
        "NP901",
        "outside the workspace",
        probe_case("dotdot", outside_dotdot),
    ),
    Hostile(
        "probe-outside-link", "NP901", "outside the workspace", probe_case("outlink", outside_link)
    ),
    Hostile("probe-fifo", "NP901", "named pipe", probe_case("fifo", fifo)),
    Hostile("probe-device-link", "NP901", "/dev/zero", probe_case("device", device_link)),
    Hostile("probe-sparse-huge", "NP901", "over the", probe_case("sparse", sparse_npy)),
    Hostile("onnx-200k-nodes", "NP901", "nodes", onnx_many_nodes),
    Hostile("onnx-nested-200k-nodes", "NP901", "nodes", onnx_nested_nodes),
    Hostile("checkpoint-sparse-6gib", "NP901", "not a PyTorch checkpoint", sparse_checkpoint),
    Hostile("log-to-dev-zero", "", "", log_to_device),
]
