"""Hostile files nnprobe may be asked to look at: it must refuse them, say why, never run them.

A model downloaded from the internet is untrusted input. Each file here is built in the test and
carries a payload that, if it ever ran, would create a sentinel file; or it points outside the
model's folder for its data. nnprobe is run on each through the CLI (with and without
`--no-import`, never `--allow-pickle`) and through the probe worker the CLI uses, and must answer
NP901 (unreadable) or NP902 (refused pickle) without a traceback, and the sentinel must not exist.
"""

from __future__ import annotations

import builtins
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from onnx import TensorProto, helper  # noqa: E402
from torch import nn  # noqa: E402

from nnprobe.probe.worker_client import WorkerClient  # noqa: E402


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


FLOATS = np.zeros(4, dtype=np.float32).tobytes()
CORPUS = [
    *(Hostile(f"raw-pickle-protocol-{n}", "NP902", ".open)", raw_pickle(n)) for n in (2, 4, 5)),
    Hostile("pickle-in-pt", "NP902", "refused to unpickle", torch_saved(".pt")),
    Hostile("pickle-in-pth", "NP902", "refused to unpickle", torch_saved(".pth")),
    Hostile("pickle-in-ckpt", "NP902", "refused to unpickle", torch_saved(".ckpt")),
    Hostile("state-dict-is-a-model", "NP902", "whole pickled model", fake_state_dict),
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


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "SENTINEL_code_ran"


def test_the_payload_is_real(tmp_path: Path, sentinel: Path) -> None:
    """Without this the corpus could be harmless and every test below would pass for nothing."""
    pickle.loads(raw_pickle(4)(tmp_path, sentinel).read_bytes())
    assert sentinel.exists()
    sentinel.unlink()
    torch.load(torch_saved(".pt")(tmp_path, sentinel), weights_only=False)
    assert sentinel.exists()
    sentinel.unlink()
    torch.load(fake_state_dict(tmp_path, sentinel), weights_only=False)
    assert sentinel.exists()


def _inspect(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "nnprobe", "inspect", "--output-format", "json", *extra]
    return subprocess.run(
        [*command, str(path)], cwd=path.parent, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("extra", [(), ("--no-import",)], ids=["default", "no-import"])
@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_cli_refuses_hostile_file(
    case: Hostile, extra: tuple[str, ...], tmp_path: Path, sentinel: Path
) -> None:
    path = case.build(tmp_path, sentinel)
    result = _inspect(path, *extra)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 1), result.stderr
    findings = json.loads(result.stdout)["findings"]
    assert [f["code"] for f in findings] == [case.code], findings
    [finding] = findings
    assert case.says in finding["message"], finding["message"]
    assert result.returncode == (1 if finding["severity"] == "error" else 0)
    assert not sentinel.exists()


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerClient]:
    client = WorkerClient()
    yield client
    client.close()


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_worker_refuses_hostile_file(
    case: Hostile, worker: WorkerClient, tmp_path: Path, sentinel: Path
) -> None:
    path = case.build(tmp_path, sentinel)
    params = {"checkpoint": str(path), "display": path.name, "allow_pickle": False}
    response = worker.request("probe", params, timeout=120)
    assert response["error"]["code"] == case.code, response
    assert case.says in response["error"]["message"]
    assert "traceback" not in response["error"]
    assert not sentinel.exists()
