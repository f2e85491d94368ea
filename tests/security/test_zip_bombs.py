"""Zip bombs are refused from the central directory, quickly and in bounded memory.

torch inflates a deflated data.pkl whole before unpickling it (bench/RESULTS-zip-bombs.md: 1 GiB in
13 s and 2.2 GiB of memory), so nnprobe refuses archives that declare far more than their size, or
list more members than a checkpoint has, before torch or zipfile decompress a byte. Each bomb is
loaded in one fresh subprocess that reports, per file, the wall time, tracemalloc's peak and the
growth of the process's peak RSS over what importing torch took.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from corpus import declared_huge, deflate_bomb, many_members  # noqa: E402

from nnprobe.probe.zip_limits import MAX_MEMBERS  # noqa: E402

GiB = 2**30
CHILD = """
import json, resource, sys, time, tracemalloc
import torch
from nnprobe.probe.loading import LoadError, load_checkpoint
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = rss()
for path in sys.argv[1:]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        load_checkpoint(path)
        outcome = ("loaded", "")
    except LoadError as exc:
        outcome = (exc.code, exc.message)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"path": path, "code": outcome[0], "message": outcome[1],
                      "seconds": seconds, "traced": peak, "rss_growth": rss() - base}))
"""


def test_bombs_are_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    builders = {
        "data.pkl inflating to 256 MiB": deflate_bomb("data.pkl", GiB // 4),
        "tensor record inflating to 256 MiB": deflate_bomb("data/0", GiB // 4),
        "data.pkl declared 4 GiB": declared_huge,
        f"{MAX_MEMBERS + 1} members": many_members(MAX_MEMBERS + 1),
    }
    paths = {
        label: str(build(tmp_path, tmp_path / "sentinel")) for label, build in builders.items()
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *paths.values()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = {r["path"]: r for r in map(json.loads, done.stdout.splitlines())}
    for label, path in paths.items():
        r = results[path]
        print(
            f"{label}: {r['code']} in {r['seconds'] * 1000:.1f} ms, traced peak "
            f"{r['traced'] / 2**20:.1f} MiB, peak RSS growth {r['rss_growth'] / 2**20:.1f} MiB"
        )
        assert r["code"] == "NP901", r
        assert "zip bomb" in r["message"] or "members" in r["message"], r
        assert r["seconds"] < 2.0, r
        assert r["traced"] < 48 * 2**20, r
    assert max(r["rss_growth"] for r in results.values()) < 96 * 2**20, results


def test_an_ordinary_checkpoint_passes_the_check(tmp_path: Path) -> None:
    """The limits leave real checkpoints alone: torch.save writes members stored."""
    import torch

    from nnprobe.probe.loading import load_checkpoint

    path = tmp_path / "big.pt"
    torch.save({f"layer{i}.weight": torch.randn(512, 512) for i in range(24)}, path)
    assert len(load_checkpoint(path).tensors) == 24
