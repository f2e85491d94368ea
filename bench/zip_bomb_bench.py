"""What torch.load(weights_only=True) and nnprobe do with zip bombs posing as .pt checkpoints.

Each file is opened in a fresh subprocess, once by `torch.load(path, weights_only=True, mmap=True)`
(what nnprobe did before the zip_limits pre-check) and once by nnprobe's `load_checkpoint`; the
table gives the outcome, the wall time and the child's peak RSS (ru_maxrss, which includes the
~300 MB of importing torch). Files come from tests/security/corpus.py.

    .venv/bin/python bench/zip_bomb_bench.py
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "security"))

from corpus import declared_huge, deflate_bomb, many_members  # noqa: E402

GiB = 2**30
CHILD = """
import json, resource, sys, time
import torch
from nnprobe.probe.loading import LoadError, load_checkpoint
path, how = sys.argv[1], sys.argv[2]
start = time.perf_counter()
try:
    if how == "torch":
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        outcome = "loaded"
    else:
        load_checkpoint(path)
        outcome = "loaded"
except LoadError as exc:
    outcome = f"{exc.code}: {exc.message}"
except BaseException as exc:
    outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
elapsed = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"outcome": outcome[:110], "seconds": elapsed, "rss_mib": rss}))
"""


def run(path: Path, how: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), how], capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        return {"outcome": f"exit {done.returncode}", "seconds": float("nan"), "rss_mib": 0}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    cases = {
        "deflate bomb in data.pkl (1 GiB)": deflate_bomb("data.pkl", GiB),
        "deflate bomb in a tensor record (1 GiB)": deflate_bomb("data/0", GiB),
        "central directory declares data.pkl 4 GiB": declared_huge,
        "60,000 empty members": many_members(60_000),
    }
    print("| file | size | reader | outcome | time | peak RSS |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, build in cases.items():
            path = build(folder, folder / "sentinel")
            size = path.stat().st_size
            for how in ("torch", "nnprobe"):
                r = run(path, how)
                print(
                    f"| {label} | {size / 1024:.0f} KiB | {how} | {r['outcome']} | "
                    f"{float(r['seconds']):.2f} s | {float(r['rss_mib']):.0f} MiB |"  # type: ignore[arg-type]
                )


if __name__ == "__main__":
    main()
