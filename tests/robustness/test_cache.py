"""The on-disk export cache under damage and contention: every kind of broken entry is detected,
discarded and rebuilt without a traceback or a wrong result; CLI runs started together on one
empty cache all succeed alike and leave only sound entries, which the next runs hit; a cache
directory that cannot be written costs the cache, not the probe; and the key changes with
everything that changes the graph.

`pytest tests/robustness/test_cache.py -s` prints the figures (variants tried, rebuilt,
concurrent runs, entries verified, second-round hits) when the module finishes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import random
import subprocess
import sys
import textwrap
import types
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from zoo import MLP, DataDependent, SmallCNN, ZooEntry  # noqa: E402

from nnprobe.probe import ProbeOptions, probe_module  # noqa: E402
from nnprobe.probe import export as export_mod  # noqa: E402
from nnprobe.probe.disk_cache import ENTRY_VERSION, MAGIC, pack, read_entry, unpack  # noqa: E402
from nnprobe.probe.export import architecture_key, export_module  # noqa: E402

CNN = ZooEntry("cnn", SmallCNN, (1, 8, 8))
MLP16 = ZooEntry("mlp", MLP, (16,))
CACHE_LOG = "nnprobe.probe.cache"
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def figures() -> Iterator[None]:
    yield
    print(
        f"\ncache robustness: {TALLY['variants']} damaged-entry variants tried, "
        f"{TALLY['rebuilt']} detected, discarded and rebuilt with an unchanged result; "
        f"{TALLY['concurrent']} CLI runs started at once on an empty cache, "
        f"{TALLY['entries']} entries left, {TALLY['verified']} verified, "
        f"{TALLY['second_round']} second-round runs hit all {TALLY['hits']} entries unchanged; "
        f"{TALLY['unwritable']} probes and {TALLY['unwritable_cli']} CLI run in unwritable cache "
        "dirs ran uncached with one log line"
    )


def _stds(result: object) -> list[float]:
    return [v.std for v in result.values]  # type: ignore[attr-defined]


def _entry(directory: Path, suffix: str) -> Path:
    [path] = (directory / "graphs").glob(f"*{suffix}")
    return path


def _reframe(body: bytes) -> bytes:
    """A correctly framed and checksummed entry around any body."""
    digest = hashlib.sha256(body).hexdigest().encode()
    return b"%s %d %s %d\n" % (MAGIC, ENTRY_VERSION, digest, len(body)) + body


def _other_onnx() -> bytes:
    """A valid ONNX model of another architecture (the MLP), exported fresh."""
    return export_module(MLP16.build(), MLP16.inputs(3), use_cache=False).model.SerializeToString()


def _variants() -> dict[str, Callable[[bytes, str, Path], bytes]]:
    """Ways the file under a graph entry's name can be wrong, from the good entry's bytes."""

    def truncated(fraction: float) -> Callable[[bytes, str, Path], bytes]:
        return lambda good, key, tmp: good[: int(len(good) * fraction)]

    def flipped(good: bytes, key: str, tmp: Path) -> bytes:
        data = bytearray(good)
        data[-10] ^= 0xFF
        return bytes(data)

    def foreign_entry(good: bytes, key: str, tmp: Path) -> bytes:
        """Another architecture's sound entry, copied under this key's name."""
        export_module(MLP16.build(), MLP16.inputs(3), cache_dir=tmp / "other")
        return _entry(tmp / "other", ".graph").read_bytes()

    def forged(good: bytes, key: str, tmp: Path) -> bytes:
        """Checksum and key right, but the graph is another model's: only content checks see it."""
        meta, _ = unpack(good, "graph", key)
        return pack("graph", key, meta, _other_onnx())

    def forged_tree(good: bytes, key: str, tmp: Path) -> bytes:
        meta, payload = unpack(good, "graph", key)
        return pack("graph", key, {**meta, "module_names": ["", "elsewhere"]}, payload)

    def unreadable_metadata(good: bytes, key: str, tmp: Path) -> bytes:
        body = good.partition(b"\n")[2]
        return _reframe(b"{not json" + body[body.index(b"\n") :])

    def missing_metadata(good: bytes, key: str, tmp: Path) -> bytes:
        _, payload = unpack(good, "graph", key)
        return pack("graph", key, {}, payload)

    def garbage_protobuf(good: bytes, key: str, tmp: Path) -> bytes:
        meta, _ = unpack(good, "graph", key)
        return pack("graph", key, meta, b"\xff\xff\xff\xff not a protobuf")

    return {
        "empty": lambda good, key, tmp: b"",
        "truncated to 10%": truncated(0.1),
        "truncated to 50%": truncated(0.5),
        "truncated to 99%": truncated(0.99),
        "random bytes": lambda good, key, tmp: random.Random(0).randbytes(len(good)),
        "one byte flipped": flipped,
        "a plain ONNX file": lambda good, key, tmp: _other_onnx(),
        "another key's entry": foreign_entry,
        "another model's graph, checksummed": forged,
        "another module tree, checksummed": forged_tree,
        "unreadable metadata, checksummed": unreadable_metadata,
        "missing metadata, checksummed": missing_metadata,
        "not a protobuf, checksummed": garbage_protobuf,
    }


@pytest.fixture(scope="module")
def reference() -> tuple[list[float], torch.Tensor]:
    """The uncached probe of the CNN: what every damaged-cache run must reproduce."""
    x = CNN.inputs(32)
    fresh = probe_module(
        CNN.build(), x.numpy(), display_path="m.pt", options=ProbeOptions(use_cache=False)
    )
    return _stds(fresh), x


@pytest.fixture(scope="module")
def good_entry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, bytes]:
    """The CNN's sound graph entry: its key and bytes."""
    cache = tmp_path_factory.mktemp("good")
    export_module(CNN.build(), CNN.inputs(3), cache_dir=cache)
    path = _entry(cache, ".graph")
    return path.stem, path.read_bytes()


@pytest.mark.parametrize("variant", list(_variants()))
def test_damaged_graph_entry_is_discarded_and_rebuilt(
    variant: str,
    tmp_path: Path,
    reference: tuple[list[float], torch.Tensor],
    good_entry: tuple[str, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected, x = reference
    key, good = good_entry
    path = tmp_path / "graphs" / f"{key}.graph"
    path.parent.mkdir()
    path.write_bytes(_variants()[variant](good, key, tmp_path))
    TALLY["variants"] += 1
    options = ProbeOptions(cache_dir=tmp_path)
    with caplog.at_level(logging.DEBUG, logger=CACHE_LOG):
        again = probe_module(CNN.build(), x.numpy(), display_path="m.pt", options=options)
    assert again.backend == "onnxruntime"
    assert not again.cache_hit and not again.used_fallback
    assert _stds(again) == pytest.approx(expected, rel=1e-6, abs=1e-9)
    [line] = [r for r in caplog.records if r.name == CACHE_LOG]
    assert line.levelno == logging.DEBUG and "discarding damaged cache entry" in line.message
    assert read_entry(path, "graph", key) is not None  # rebuilt, and sound
    hit = probe_module(CNN.build(seed=1), x.numpy(), display_path="n.pt", options=options)
    assert hit.cache_hit
    TALLY["rebuilt"] += 1


@pytest.mark.parametrize(
    "damage",
    [b"", b"\x00" * 40, b"nnprobe-cache 1 0000 5\nhello"],
    ids=["empty", "zeros", "bad checksum"],
)
def test_damaged_failure_marker_is_rebuilt(
    damage: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The marker that sends an unexportable architecture straight to eager: a broken one means
    one more export attempt, the same NP903 reason, and a sound marker again."""
    entry = ZooEntry("dd", DataDependent, (16,))
    options = ProbeOptions(cache_dir=tmp_path, exporters=("torchscript",))
    x = entry.inputs(20).numpy()
    first = probe_module(entry.build(), x, display_path="m.pt", options=options)
    marker = _entry(tmp_path, ".failed")
    marker.write_bytes(damage)
    TALLY["variants"] += 1
    with caplog.at_level(logging.DEBUG, logger=CACHE_LOG):
        again = probe_module(entry.build(), x, display_path="m.pt", options=options)
    assert again.used_fallback and again.fallback_reason == first.fallback_reason
    assert _stds(again) == pytest.approx(_stds(first))
    assert any("discarding damaged" in r.message for r in caplog.records if r.name == CACHE_LOG)
    key = marker.name.removesuffix(".failed")
    assert read_entry(marker, "failure", key) is not None
    TALLY["rebuilt"] += 1


def test_writes_leave_no_temporaries_and_sweep_stale_ones(tmp_path: Path) -> None:
    graphs = tmp_path / "graphs"
    graphs.mkdir()
    stale = graphs / ".abc.graph.x1y2.tmp"  # what a writer killed mid-write leaves
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    fresh = graphs / ".def.graph.z3.tmp"  # a live writer's: not touched
    fresh.write_bytes(b"half")
    export_module(CNN.build(), CNN.inputs(3), cache_dir=tmp_path)
    assert sorted(p.name for p in graphs.iterdir() if p.suffix == ".tmp") == [fresh.name]
    assert len(list(graphs.glob("*.graph"))) == 1


def _read_only(folder: Path) -> bool:
    """Make `folder` read-only; False where permission bits do not stop this process (root)."""
    folder.chmod(0o555)
    try:
        (folder / "probe-write").write_text("")
    except OSError:
        return True
    (folder / "probe-write").unlink()
    return False


def _unwritable_dirs(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    yield "a file where the folder should be", blocker / "cache"
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    if _read_only(readonly):
        yield "a read-only folder", readonly


def test_unwritable_cache_dir_probes_uncached_with_one_log_line(
    tmp_path: Path, reference: tuple[list[float], torch.Tensor], caplog: pytest.LogCaptureFixture
) -> None:
    expected, x = reference
    for what, directory in _unwritable_dirs(tmp_path):
        caplog.clear()
        options = ProbeOptions(cache_dir=directory)
        with caplog.at_level(logging.DEBUG, logger=CACHE_LOG):
            runs = [
                probe_module(CNN.build(seed=s), x.numpy(), display_path="m.pt", options=options)
                for s in (0, 0, 1)
            ]
        assert [r.cache_hit for r in runs] == [False, False, False], what
        assert [r.backend for r in runs] == ["onnxruntime"] * 3, what
        assert _stds(runs[0]) == pytest.approx(expected, rel=1e-6, abs=1e-9), what
        lines = [r for r in caplog.records if r.name == CACHE_LOG and r.levelno >= logging.INFO]
        assert len(lines) == 1 and lines[0].levelno == logging.WARNING, (what, lines)
        assert str(directory) in lines[0].message and "cannot be written" in lines[0].message
        TALLY["unwritable"] += len(runs)


def test_read_only_cache_with_entries_still_serves_hits(
    tmp_path: Path, reference: tuple[list[float], torch.Tensor]
) -> None:
    expected, x = reference
    options = ProbeOptions(cache_dir=tmp_path)
    probe_module(CNN.build(), x.numpy(), display_path="m.pt", options=options)
    if not (_read_only(tmp_path) and _read_only(tmp_path / "graphs")):
        pytest.skip("permission bits do not stop this user (root)")
    hit = probe_module(CNN.build(), x.numpy(), display_path="m.pt", options=options)
    assert hit.cache_hit and _stds(hit) == pytest.approx(expected, rel=1e-6, abs=1e-9)


HELPERS = """
import torch
from torch import nn

SCALE = {scale}


def squash(x):
    return torch.{act}(x) * SCALE


def unused():
    return {unused}


class Net(nn.Module):
    def __init__(self, gain=1.0):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gain = gain

    def forward(self, x):
        return squash(self.fc(x)) * self.gain
"""


def _load(tmp_path: Path, folder: str, **values: object) -> types.ModuleType:
    """HELPERS with `values` filled in, imported as one module name from its own folder."""
    fields = {"scale": 1.0, "act": "relu", "unused": 0, **values}
    path = tmp_path / folder / "arch.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(HELPERS.format(**fields)), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("arch_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_key_changes_with_everything_that_changes_the_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = torch.randn(3, 4)

    def key(folder: str, gain: float = 1.0, **values: object) -> str:
        return architecture_key(_load(tmp_path, folder, **values).Net(gain), x)

    base = key("base")
    assert key("same") == base  # the same source in another import: the same key
    assert key("unused", unused=1) == base  # a function the model never calls: no new export
    assert key("helper", act="sigmoid") != base  # a helper's source
    assert key("constant", scale=2.0) != base  # a module constant the forward reads
    assert key("attribute", gain=2.0) != base  # a plain attribute repr() does not show
    model = _load(tmp_path, "versions").Net()
    before = architecture_key(model, x, exporter="torchscript")
    assert "torch" in export_mod._versions("torchscript")
    assert "onnxscript" in export_mod._versions("dynamo")
    monkeypatch.setattr(export_mod, "_versions", lambda exporter: "torch9.9")
    assert architecture_key(model, x, exporter="torchscript") != before


WORKSPACE_MLP = """
from torch import nn


def make():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two architectures behind a models config: the digits CNN (a fresh checkpoint, and one whose
    `fc1` ReLUs are all dead, so NP301 shows the activations were probed) and an MLP factory; 64
    digits to probe with."""
    import numpy as np
    from digits_cnn import fresh, images, write_workspace

    root = tmp_path_factory.mktemp("shared-cache")
    write_workspace(root, fresh(seed=0), "cnn_fresh.pt")
    x, y = images()
    np.savez(root / "probe.npz", x=x[:64], y=y[:64])
    dead = fresh(seed=1)
    with torch.no_grad():
        dead.fc1.bias.fill_(-50.0)
    torch.save(dead.state_dict(), root / "cnn_dead.pt")
    (root / "mlp.py").write_text(WORKSPACE_MLP, encoding="utf-8")
    torch.manual_seed(0)
    torch.save(
        torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
        ).state_dict(),
        root / "mlp_0.pt",
    )
    (root / "pyproject.toml").write_text(
        '[tool.nnprobe]\nprobe = "probe.npz"\n\n'
        '[tool.nnprobe.models]\n"cnn_*.pt" = "model.py:DigitsCNN"\n"mlp_*.pt" = "mlp.py:make"\n',
        encoding="utf-8",
    )
    return root


def _run_together(root: Path, cache: Path, count: int, tag: str) -> list[tuple[str, str]]:
    """`count` `nnprobe inspect` processes started at once on one cache; their JSON reports and
    stderr."""
    env = {**os.environ, "NNPROBE_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "nnprobe", "inspect", "cnn_fresh.pt", "cnn_dead.pt"]
    command += ["mlp_0.pt", "--select", "NP2,NP3,NP9", "--output-format", "json"]
    processes = [
        subprocess.Popen(
            [*command, "--output", f"{tag}{i}.json"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    try:
        errors = [process.communicate(timeout=300)[1] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, err in zip(processes, errors, strict=True):
        assert process.returncode in (0, 1) and "Traceback" not in err, err
    reports = [(root / f"{tag}{i}.json").read_text(encoding="utf-8") for i in range(count)]
    return list(zip(reports, errors, strict=True))


def _with_zero_weights(meta: dict[str, object], payload: bytes) -> onnx.ModelProto:
    """The cached graph with zeros bound where its weights go (entries store no weight data)."""
    from onnx import helper, numpy_helper

    model = onnx.load_model_from_string(payload)
    bound = set(meta["bound_names"])  # type: ignore[call-overload]
    for tensor in model.graph.initializer:
        if tensor.name in bound:
            dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
            zeros = numpy_helper.from_array(np.zeros(tuple(tensor.dims), dtype), tensor.name)
            tensor.CopyFrom(zeros)
    return model


def _verify(cache: Path) -> dict[str, tuple[int, int]]:
    """Every entry is sound (checksum, key, a loadable graph); their inode and mtime by name."""
    graphs = cache / "graphs"
    assert not [p for p in graphs.iterdir() if p.name.endswith(".tmp")]
    stamps = {}
    for path in sorted(graphs.iterdir()):
        kind = {".graph": "graph", ".failed": "failure"}[path.suffix]
        entry = read_entry(path, kind, path.stem)
        assert entry is not None, path
        if kind == "graph":
            onnx.checker.check_model(_with_zero_weights(entry[0], entry[1]))
        stat = path.stat()
        stamps[path.name] = (stat.st_ino, stat.st_mtime_ns)
    return stamps


def test_concurrent_cli_runs_share_one_cache(workspace: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _run_together(workspace, cache, 4, "first")
    TALLY["concurrent"] += 4
    findings = [json.loads(r)["findings"] for r, _ in first]
    assert all(f == findings[0] for f in findings)
    codes = {f["code"] for f in findings[0]}
    assert not codes & {"NP901", "NP903", "NP904", "NP905"}, codes
    assert ("NP301", "cnn_dead.pt") in {(f["code"], f["path"]) for f in findings[0]}
    stamps = _verify(cache)
    assert len(stamps) == 2 and all(name.endswith(".graph") for name in stamps)
    TALLY["entries"] += len(list((cache / "graphs").iterdir()))
    TALLY["verified"] += len(stamps)
    second = _run_together(workspace, cache, 2, "second")
    assert [json.loads(r)["findings"] for r, _ in second] == findings[:2]
    assert _verify(cache) == stamps  # nothing rewritten: every run hit every entry
    TALLY["second_round"] += 2
    TALLY["hits"] += len(stamps)
    # A cache that cannot be written: the same findings, and the worker's one line on stderr.
    (tmp_path / "a-file").write_text("not a folder")
    [(report, err)] = _run_together(workspace, tmp_path / "a-file" / "cache", 1, "unwritable")
    assert json.loads(report)["findings"] == findings[0]
    [line] = [line for line in err.splitlines() if "cache" in line]
    assert line.startswith("nnprobe: ") and "cannot be written" in line, err
    TALLY["unwritable_cli"] += 1
