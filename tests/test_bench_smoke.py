"""The benchmark is not a test, but it must keep running as the engine changes; this runs it once
with a single repetition and checks what it measured, never how fast."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench" / "static_bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("static_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_generated_scripts_are_valid_and_the_promised_size() -> None:
    bench = load_bench()
    for target in (300, 5000):
        source = bench.generate_script(target)
        ast.parse(source)
        lines = source.count("\n")
        assert target <= lines < target * 1.1
        assert "import torch" in source and "optimizer.step()" in source


def test_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH), "--repeat", "1", "--keep", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "| measure | value |" in run.stdout
    for measure in ("files/s", "per-file check time p50", "per-file check time p95", "ast.parse"):
        assert measure in run.stdout
    ratio = re.search(r"whole run: nnprobe / ast.parse .* = (\d+\.\d+)x", run.stdout)
    assert ratio and float(ratio.group(1)) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generated_300_lines.py",
        "generated_5000_lines.py",
    ]
