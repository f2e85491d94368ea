"""The probe benchmark must keep running as the engine changes: one quick pass on tiny models,
checking what it measured (a cache hit, a table), never how fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_probe_bench_quick_pass(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "probe_bench.py"), "--quick", "--write", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "| (c) ORT probe ms |" in text and "| fastest |" in text
    assert text.count("\n| ResNet-18 shape") == 2
