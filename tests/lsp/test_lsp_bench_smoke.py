"""The LSP benchmark is not a test, but it must keep running as the server changes: one tiny run,
checking what it measured, never how fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_lsp_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS-lsp.md"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "lsp_bench.py"),
            "--repeat=1",
            "--documents=3",
            "--samples=3",
            "--edits=40",
            "--checkpoints=1",
            "--no-gradients",
            f"--output={output}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "| measure | value |" in run.stdout
    for measure in (
        "initialize (spawn to reply",
        "RSS after initialize",
        "RSS after opening 3 documents",
        "didChange -> publishDiagnostics",
        "ratio: LSP p50 / in-process p50",
        "burst of 40 edits, debounce 0 ms",
        "burst of 40 edits, debounce 200 ms",
        "checkpoint write -> runtime diagnostics, small CNN",
    ):
        assert measure in run.stdout
    assert output.read_text().startswith("# Language server benchmark")
