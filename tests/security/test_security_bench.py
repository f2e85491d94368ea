"""bench/security_bench.py --quick, as CI runs it: the table has its shape, the peer scanners'
column names what the pickle would import, and no untrusted run executed its payload or hung.

The full run (every input through every entry point) writes bench/RESULTS-security.md; this keeps
the command working and its verdicts honest on a few runs through each entry point.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("picklescan")

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [
    "input",
    "source",
    "entry point",
    "mode",
    "target",
    "executed",
    "hang",
    "peak RSS",
    "exit",
    "JSON",
    "findings",
    "expected",
    "message",
]


def table(text: str, heading: str) -> list[dict[str, str]]:
    """The rows of the Markdown table under `heading`, as {column: cell}."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    head = [cell.strip() for cell in lines[0].strip("|").split(" | ")]
    rows = []
    for line in lines[2:]:
        cells = [
            cell.strip() for cell in line.strip().removeprefix("|").removesuffix("|").split(" | ")
        ]
        assert len(cells) == len(head), line
        rows.append(dict(zip(head, cells, strict=True)))
    return rows


def test_quick_security_bench(tmp_path: Path) -> None:
    output = tmp_path / "RESULTS-security.md"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "security_bench.py"),
            "--quick",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    assert "load average" in text
    summary = text.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    assert "executions without trust: **0** (target 0)" in summary, summary
    assert "hangs (no exit or answer within the time limit): **0**" in summary, summary
    for entry_point in ("CLI", "worker", "server"):
        assert f"peak RSS, {entry_point}: max" in summary

    runs = table(text, "Every run")
    assert list(runs[0]) == COLUMNS
    assert {r["entry point"] for r in runs} == {"CLI", "worker", "server"}
    assert {r["input"] for r in runs} == {"raw-pickle-protocol-4", "onnx-dotdot"}
    for row in runs:
        assert row["executed"] == "no", row
        assert row["hang"] == "no", row
        assert row["peak RSS"].split()[0].strip("*").isdigit(), row
        assert row["expected"] == "ok", row  # the pickle's NP902, the ONNX file's NP901
    cli = [r for r in runs if r["entry point"] == "CLI"]
    assert all(r["JSON"] == "yes" and r["exit"] in ("0", "1") for r in cli), cli

    [scanned] = table(text, "Pickles: what the peer scanners say")
    assert scanned["input"] == "raw-pickle-protocol-4"
    assert "NP902" in scanned["nnprobe (codes, untrusted runs)"]
    assert scanned["picklescan"].startswith("flagged") and "io.open" in scanned["picklescan"]
