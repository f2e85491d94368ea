"""Hostile files nnprobe may be asked to look at: it must refuse them, say why, never run them.

A model downloaded from the internet is untrusted input. Each file here is built in the test and
carries a payload that, if it ever ran, would create a sentinel file; or it points outside the
model's folder for its data. nnprobe is run on each through the CLI (with and without
`--no-import`, never `--allow-pickle`) and through the probe worker the CLI uses, and must answer
NP901 (unreadable) or NP902 (refused pickle) without a traceback, and the sentinel must not exist.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from corpus import CORPUS, Hostile, fake_state_dict, raw_pickle, torch_saved  # noqa: E402

from nnprobe.probe.worker_client import WorkerClient  # noqa: E402


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
    for name in case.imports:
        assert name in finding["message"], (name, finding["message"])
    assert result.returncode == (1 if finding["severity"] == "error" else 0)
    assert not sentinel.exists()


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
