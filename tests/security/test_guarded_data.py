"""Probe data, ONNX graphs, export-cache entries and the positions of findings go through the
guarded reader (issue 12, item 4).

Each hostile input of corpus_data.CASES is inspected by the real CLI (untrusted, in a fresh
subprocess whose peak RSS, children included, is read with getrusage(RUSAGE_CHILDREN)) and sent
to the real probe worker (its VmHWM reset before each job): every one ends in a clear NP901 that
names the file and the reason, within the subprocess timeout, under 1 GB. Before: the 2 MB .npz
took 2.1 GB, the 2 MB .pt 2.3 GB, a 200k-node ONNX 7.5 GB, `probe = "../outside.npz"` was read
and its statistics printed. Export-cache entries that are not regular files or are too big are
discarded unread and rebuilt. Findings on a file the editor does not have open are placed by
reading only the lines they name, and nothing of a binary file.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import corpus_data  # noqa: E402
from corpus import Hostile  # noqa: E402

from nnprobe.core.config import Config, load_config  # noqa: E402
from nnprobe.core.finding import Confidence, Finding, Position, Range, Severity  # noqa: E402
from nnprobe.probe.jobs import config_to_dict  # noqa: E402
from nnprobe.probe.runtime import probe_source  # noqa: E402
from nnprobe.probe.worker_client import WorkerClient  # noqa: E402
from nnprobe.server.convert import disk_index  # noqa: E402
from nnprobe.server.positions import UTF8, UTF16, UTF32, FileLines, LineIndex  # noqa: E402

GB = 10**9
TIMEOUT_S = 180
CLI_CASES = [case for case in corpus_data.CASES if case.code]
WORKER_CASES = [case for case in CLI_CASES if not case.name.startswith("probe-outside")]
# Runs `nnprobe ...` and prints the peak RSS of it and every process it waited for.
MEASURED = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(done.stderr)
sys.stdout.write(done.stdout)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
print(f"\\nPEAK_RSS {peak}", file=sys.stderr)
sys.exit(done.returncode)
"""


def build(case: Hostile, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(workspace, the path to inspect, the sentinel)."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sentinel = tmp_path / "SENTINEL_code_ran"
    return workspace, case.build(workspace, sentinel), sentinel


def probe_named(workspace: Path) -> str | None:
    config = workspace / "pyproject.toml"
    if not config.exists():
        return None
    probe: str = tomllib.loads(config.read_text())["tool"]["nnprobe"]["probe"]
    return probe


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_cli_refuses_with_np901_quickly_in_bounded_memory(case: Hostile, tmp_path: Path) -> None:
    workspace, target, sentinel = build(case, tmp_path)
    command = [sys.executable, "-m", "nnprobe", "inspect", "--untrusted", "--output-format"]
    done = subprocess.run(
        [sys.executable, "-c", MEASURED, *command, "json", target.name],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    peak = int(done.stderr.rsplit("PEAK_RSS ", 1)[1])
    assert "Traceback" not in done.stderr, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert [f["code"] for f in findings] == [case.code], findings
    message = findings[0]["message"]
    assert case.says in message, message
    named = probe_named(workspace)
    assert Path(named).name in message if named else True, message
    assert peak < GB, f"peak RSS {peak / 2**20:.0f} MiB"
    assert done.returncode == 1
    assert not sentinel.exists()


@pytest.fixture(scope="module")
def hwm(worker: WorkerClient) -> object:
    """Resets the worker's peak RSS and reads it back (Linux: clear_refs 5, VmHWM)."""

    def pid() -> int:
        worker.start()
        return worker._process.pid  # type: ignore[union-attr]

    class Peak:
        def reset(self) -> None:
            Path(f"/proc/{pid()}/clear_refs").write_text("5")

        def read(self) -> int:
            for line in Path(f"/proc/{pid()}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
            raise AssertionError("no VmHWM")

    return Peak()


@pytest.mark.parametrize("case", WORKER_CASES, ids=[c.name for c in WORKER_CASES])
def test_worker_refuses_with_np901_in_bounded_memory(
    case: Hostile, worker: WorkerClient, hwm: object, tmp_path: Path
) -> None:
    """The job as the CLI and the server send it: a configured probe file becomes
    {"file", "roots"} after probe_source's own checks, which refuse links out before the worker
    sees them (test_worker_refuses_a_link_out_on_its_own covers the worker's side)."""
    workspace, target, sentinel = build(case, tmp_path)
    params: dict[str, object] = {"checkpoint": str(target), "display": target.name}
    params["config"] = config_to_dict(Config.default(root=workspace))
    if probe_named(workspace):
        try:
            params["probe"] = probe_source(load_config(start=workspace))
        except ValueError as exc:
            assert case.says in str(exc)
            return
    hwm.reset()  # type: ignore[attr-defined]
    response = worker.request("probe", params, timeout=TIMEOUT_S)
    peak = hwm.read()  # type: ignore[attr-defined]
    assert response["error"]["code"] == case.code, response
    assert case.says in response["error"]["message"], response
    assert "traceback" not in response["error"]
    assert peak < GB, f"worker VmHWM {peak / 2**20:.0f} MiB"
    assert not sentinel.exists()


def test_a_configured_probe_outside_the_workspace_is_refused_and_a_typed_one_read(
    tmp_path: Path,
) -> None:
    """The config is repository content, so its `probe` stays in the workspace; a path the user
    types with --probe is theirs to choose (as a checkpoint named on the command line is)."""
    workspace, _, _ = build(
        corpus_data.CASES[[c.name for c in corpus_data.CASES].index("probe-outside-dotdot")],
        tmp_path,
    )
    with pytest.raises(ValueError, match="outside the workspace"):
        probe_source(load_config(start=workspace))
    config = load_config(start=workspace)
    config.probe_named = True
    source = probe_source(config)
    assert source is not None and Path(source["file"]).name == "secret.npz"
    assert "roots" not in source


def test_worker_refuses_a_link_out_on_its_own(worker: WorkerClient, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    probe = corpus_data.outside_link(workspace)
    model = corpus_data.mlp_onnx(workspace / "model.onnx")
    params = {
        "checkpoint": str(model),
        "display": model.name,
        "config": config_to_dict(Config.default(root=workspace)),
        "probe": {"file": str(workspace / probe), "roots": [str(workspace)]},
    }
    response = worker.request("probe", params, timeout=TIMEOUT_S)
    assert response["error"]["code"] == "NP901", response
    assert "outside the workspace: not read" in response["error"]["message"]
    # The control: the same data inside the workspace is read.
    (workspace / probe).unlink()
    (workspace / probe).write_bytes((tmp_path / "ws-outside" / "secret.npz").read_bytes())
    response = worker.request("probe", params, timeout=TIMEOUT_S)
    assert "error" not in response, response
    assert any("from data.npz" in f["message"] for f in response["result"]["findings"])


CACHE_CHILD = """
import json, os, resource, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from zoo import MLP, ZooEntry
from nnprobe.probe.export import export_module
entry = ZooEntry("mlp", MLP, (16,))
cache, kind = Path(sys.argv[1]), sys.argv[2]
export_module(entry.build(), entry.inputs(3), cache_dir=cache)
[path] = (cache / "graphs").glob("*.graph")
path.unlink()
if kind == "fifo":
    os.mkfifo(path)
elif kind == "sparse":
    with path.open("wb") as handle:
        handle.truncate(6 * 2**30)
elif kind == "device":
    path.symlink_to("/dev/zero")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
second = export_module(entry.build(), entry.inputs(3), cache_dir=cache)
third = export_module(entry.build(), entry.inputs(3), cache_dir=cache)
growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({"second": second.cache_hit, "third": third.cache_hit, "growth": growth,
                  "regular": path.is_file() and not path.is_symlink()}))
"""


@pytest.mark.parametrize("kind", ["fifo", "sparse", "device"])
def test_a_cache_entry_that_is_not_a_small_regular_file_is_discarded_and_rebuilt(
    kind: str, tmp_path: Path
) -> None:
    """A FIFO under an entry's name hung every later probe of the model into NP904 ("ran past
    its time budget"), a 6 GiB sparse entry was read whole: now each is discarded unread, the
    graph is exported again, and the next probe hits the rebuilt entry."""
    tests = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", CACHE_CHILD, str(tmp_path / "cache"), kind, str(tests)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {**result, "second": False, "third": True, "regular": True}, result
    assert result["growth"] < 256 * 2**20, result
    assert "budget" not in done.stderr


def finding(line: int, column: int, end_line: int | None = None, end: int | None = None) -> Finding:
    where = Range.of(line, column, end_line or line, end or column + 1)
    return Finding("NP501", "x", Severity.WARNING, Confidence.HIGH, "x", "metrics.csv", range=where)


def test_positions_from_the_lines_read_equal_those_of_the_whole_text(tmp_path: Path) -> None:
    rng = random.Random(12)
    pieces = ["a", "é", "😀", "\n", "\r\n", "\r", "\n\n", " "]
    path = tmp_path / "log.csv"
    for trial in range(400):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        path.write_bytes(text.encode("utf-8"))
        encoding = rng.choice([UTF8, UTF16, UTF32])
        whole = LineIndex(text, encoding)
        findings = [
            finding(rng.randint(1, 14), rng.randint(1, 9), rng.randint(1, 14), rng.randint(1, 9))
            for _ in range(rng.randint(1, 4))
        ]
        index = disk_index(path, findings, encoding)
        for f in findings:
            for position in (f.range.start, f.range.end):
                assert index.to_lsp(position) == whole.to_lsp(position), (trial, text, position)


def rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_a_file_is_read_only_up_to_the_last_line_named(tmp_path: Path) -> None:
    """1 GiB log (sparse after its first lines): a finding on line 3 reads about one chunk."""
    path = tmp_path / "metrics.csv"
    with path.open("wb") as handle:
        handle.write(b"epoch,loss\n1,0.5\n2,nan\n")
        handle.truncate(2**30)
    before = rchar()
    index = disk_index(path, [finding(3, 1)], UTF16)
    assert index.to_lsp(Position(3, 2)) == (2, 1)
    assert rchar() - before < 4 * 2**20


def test_nothing_is_read_for_binary_files_or_when_nothing_is_published(tmp_path: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"\n" * (8 * 2**20))
    log = tmp_path / "metrics.csv"
    log.write_bytes(b"epoch,loss\n" * 2**20)
    before = rchar()
    assert disk_index(checkpoint, [finding(5, 3)], UTF16).to_lsp(Position(5, 3)) == (0, 0)
    assert disk_index(log, [], UTF16).to_lsp(Position(5, 3)) == (0, 0)
    assert rchar() - before < 4096


def test_a_device_fifo_or_link_out_is_not_read(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "metrics.csv").symlink_to("/dev/zero")
    os.mkfifo(workspace / "log.jsonl")
    for name in ("metrics.csv", "log.jsonl"):
        index = disk_index(workspace / name, [finding(9, 2)], UTF16, [workspace])
        assert index.to_lsp(Position(9, 2)) == (0, 0)
    assert isinstance(disk_index(tmp_path / "gone.csv", [finding(2, 1)], UTF16), LineIndex)


def test_lines_past_the_read_limit_stay_at_their_first_column(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"abc\n" * 1000)
    index = FileLines(path, {0: 3, 999: 3}, UTF16, limit=100)
    assert index.to_lsp(Position(1, 3)) == (0, 2)
    assert index.to_lsp(Position(1000, 3)) == (999, 0)
