"""Damaged files across the loading matrix: a clear finding for each, never a traceback, and the
rest of the run unaffected.

Every kind nnprobe reads (state_dict .pt, a bundle .ckpt with optimizer state, safetensors, ONNX,
TorchScript, Lightning/Keras CSV, JSON lines, TensorBoard events), written by its real writer from
a model trained on digits, is cut at every tenth of its length, replaced by random bytes, emptied
and misnamed (tests/robustness/corrupt_corpus.py). Whether a damaged copy is still readable is
asked of the format's own reader, never assumed: what it cannot read nnprobe must report as
NP901/NP902, and what it can read nnprobe must analyse without crashing.

Decisions where the issue is silent: a discovered .csv/.jsonl that is no longer recognisable as a
log (random bytes) is skipped like any data file, since most CSV files in a project are not
training logs, and a discovered empty log may be one a run just created; named on the command line
each gets NP901. A TensorBoard event file's name says what it is, so damage inside it is reported
either way.
"""

from __future__ import annotations

import collections
import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("safetensors")
pytest.importorskip("tensorboard")

import corrupt_corpus as cc  # noqa: E402

from nnprobe.probe.worker_client import WorkerClient  # noqa: E402

CHECKPOINT_KINDS = {"state-dict", "bundle", "safetensors", "onnx", "torchscript"}
TEXT_LOGS = {"lightning-csv", "keras-csv", "jsonl"}
REFUSED = {"NP901", "NP902"}


def readable(variant: cc.Variant) -> bool:
    """Whether the format's own reader accepts the damaged file (the oracle, not nnprobe)."""
    kind, data = variant.good.kind, variant.data
    if not data:
        return False
    try:
        if kind in ("state-dict", "bundle"):
            torch.load(io.BytesIO(data), weights_only=True)
        elif kind == "torchscript":
            torch.jit.load(io.BytesIO(data))
        elif kind == "safetensors":
            from safetensors.torch import load

            load(data)
        elif kind == "onnx":
            import onnx

            onnx.load_from_string(data)
        elif kind == "tfevents":
            return b"brain.Event" in data[:64] and len(data) > 40
        else:  # a text log: readable while its header or first record survives
            return data[:12] == variant.good.data[:12]
    except Exception:
        return False
    return True


def inspect(folder: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, list]]:
    command = [sys.executable, "-m", "nnprobe", "inspect", "--output-format", "json", *args]
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (0, 1), run.stderr
    by_path: dict[str, list] = collections.defaultdict(list)
    for finding in json.loads(run.stdout)["findings"]:
        assert "traceback" not in finding.get("data", {}), finding
        by_path[finding["path"]].append(finding)
    return run, by_path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[cc.Good], list[cc.Variant]]:
    goods = cc.good_files(tmp_path_factory.mktemp("good"))
    return goods, cc.variants(goods)


def _workspace(root: Path, goods: list[cc.Good]) -> Path:
    root.mkdir()
    (root / "train.py").write_text(cc.TRAINING_SCRIPT, encoding="utf-8")
    (root / "digits.pt").write_bytes(goods[0].data)
    return root


TALLY: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def summary() -> Iterator[None]:
    yield
    print(
        f"\ncorrupt inputs: {TALLY['variants']} variants of {TALLY['kinds']} kinds, "
        f"{TALLY['unreadable']} unreadable (each reported NP901/NP902), {TALLY['readable']} still "
        f"readable (analysed), {TALLY['skipped']} discovered logs skipped (empty or not a log), "
        f"{TALLY['worker']} through the worker; tracebacks 0, NP907 0"
    )


def _check(variant: cc.Variant, findings: list[dict[str, Any]], discovered: bool) -> str:
    codes = [f["code"] for f in findings]
    assert "NP907" not in codes, (variant.name, findings)
    if readable(variant):
        return "readable"
    if discovered and not findings and (variant.good.kind in TEXT_LOGS or not variant.data):
        return "skipped"  # a discovered empty log may be one just created
    assert len(findings) == 1 and codes[0] in REFUSED, (variant.name, findings)
    assert len(findings[0]["message"]) > 10, findings
    return "unreadable"


def test_directory_of_damaged_files(corpus: Any, tmp_path: Path) -> None:
    """`nnprobe inspect DIR` over every damaged copy beside a good checkpoint and its script: one
    clear finding per unreadable file, and the good pair's findings as in a clean folder."""
    goods, variants = corpus
    damaged = [v for v in variants if not v.label.startswith("as-")]
    clean = _workspace(tmp_path / "clean", goods)
    messy = _workspace(tmp_path / "messy", goods)
    for variant in damaged:
        (messy / variant.name).write_bytes(variant.data)

    # Weights and static findings only: probing the good checkpoint would add half a minute of
    # CI time and read nothing the damaged files reach (they fail at loading).
    _, expected = inspect(clean, "--no-probe", ".")
    run, found = inspect(messy, "--no-probe", ".")
    for variant in damaged:
        outcome = _check(variant, found.get(variant.name, []), discovered=True)
        TALLY[outcome] += 1
    TALLY["variants"] += len(damaged)
    TALLY["kinds"] = len(goods)

    def keyed(findings: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
        return sorted((f["code"], f["message"], f["severity"]) for f in findings)

    assert expected["digits.pt"] and expected["train.py"]
    for name in ("digits.pt", "train.py"):
        assert keyed(found[name]) == keyed(expected[name]), name
    errors = any(f["severity"] == "error" for fs in found.values() for f in fs)
    assert run.returncode == (1 if errors else 0)


def test_each_damaged_or_misnamed_file_named_on_the_command_line(
    corpus: Any, tmp_path: Path
) -> None:
    """Named explicitly, every unreadable file (text logs too) gets NP901, and a good file under
    another kind's extension is read by its content or refused with a reason."""
    _, variants = corpus
    folder = tmp_path / "named"
    folder.mkdir()
    for variant in variants:
        (folder / variant.name).write_bytes(variant.data)
    _, found = inspect(folder, "--no-probe", *(v.name for v in variants))
    for variant in variants:
        findings = found.get(variant.name, [])
        _check(variant, findings, discovered=False)
        if variant.label.startswith("as-"):
            TALLY["variants"] += 1
            TALLY[
                "readable" if not findings or findings[0]["code"] not in REFUSED else "unreadable"
            ] += 1


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerClient]:
    client = WorkerClient()
    yield client
    client.close()


@pytest.mark.parametrize("kind", ["state-dict", "safetensors", "onnx", "torchscript"])
def test_worker_answers_a_damaged_file_and_takes_the_next_job(
    kind: str, corpus: Any, worker: WorkerClient, tmp_path: Path
) -> None:
    goods, variants = corpus
    good = next(g for g in goods if g.kind == kind)
    pids = set()
    # TorchScript runs its code as it loads: only a trusted, opted-in job loads it (in the worker).
    opted = {"trusted": True, "allow_pickle": True} if kind == "torchscript" else {}
    for variant in [v for v in variants if v.good is good and v.label in ("cut-50pct", "random")]:
        path = tmp_path / variant.name
        path.write_bytes(variant.data)
        params = {"checkpoint": str(path), "display": path.name, "allow_pickle": False, **opted}
        response = worker.request("probe", params, timeout=120)
        assert response["error"]["code"] in REFUSED, response
        assert "traceback" not in response["error"]
        pids.add(worker.pid)
        TALLY["worker"] += 1
    path = tmp_path / good.name
    path.write_bytes(good.data)
    params = {"checkpoint": str(path), "display": path.name, "allow_pickle": False, **opted}
    response = worker.request("probe", params, timeout=120)
    assert "error" not in response or response["error"]["code"] not in REFUSED, response
    pids.add(worker.pid)
    assert len(pids) == 1 and None not in pids, "the worker restarted: a damaged file crashed it"
