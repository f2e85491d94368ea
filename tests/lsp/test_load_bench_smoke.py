"""The load benchmark (bench/load_bench.py, issue 8) must keep running as the server changes: one
small run against the real server, checking what it measured (every hover answered, the probe's
statistics reached the hover, checkpoints coalesced, final diagnostics equal a fresh server's, no
per-message state left behind), never how fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_load_benchmark_converges_and_coalesces(tmp_path: Path) -> None:
    counts_file = tmp_path / "counts.json"
    output = tmp_path / "RESULTS-load.md"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "load_bench.py"),
            "--quick",
            f"--output={output}",
            f"--json={counts_file}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    counts = json.loads(counts_file.read_text())
    assert counts["hovers_failed"] == 0
    assert counts["hovers_answered"] >= 10
    assert counts["hovers_with_content"] >= 1
    assert 1 <= counts["inspections"] < counts["checkpoints"]
    assert counts["differing"] == 0
    assert counts["compared"] >= counts["docs"] + 1
    # pygls would keep one entry per didOpen/didChange (300+) without server.protocol's fix.
    assert counts["pending_messages"] is not None
    assert counts["pending_messages"] < 10
    report = output.read_text()
    assert report.startswith("# Language server under load")
    for measure in ("hover every 100 ms during the load", "peak RSS (VmHWM)", "fresh server"):
        assert measure in report
