"""`nnprobe curves`: the picture of a real run's curves with the NP5xx events marked. The PNGs are
kept under test-output/ (gitignored) for a person to look at."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from log_runs import train, write_jsonl, write_lightning_csv

from nnprobe.cli import main
from nnprobe.core.config import Config
from nnprobe.logs.curves import analyse

pytest.importorskip("matplotlib")
OUT = Path(__file__).resolve().parent.parent / "test-output" / "curves"
PNG = b"\x89PNG\r\n\x1a\n"


def _records(**kwargs: object) -> list:  # type: ignore[type-arg]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(**kwargs)  # type: ignore[arg-type]


def test_overfitting_run_is_drawn_with_its_windows(tmp_path: Path) -> None:
    records = _records(
        kind="digits", epochs=120, lr=0.01, optimizer="adam", train_size=100, hidden=256, batches=1
    )
    log = write_lightning_csv(records, tmp_path / "metrics.csv")
    _, findings = analyse(log, Config.default())
    events = {f.code: f.data["event"] for f in findings}
    assert events["NP503"]["kind"] == "window" and events["NP503"]["x1"] > events["NP503"]["x0"]
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "overfitting-lightning.png"
    assert main(["curves", str(log), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(PNG) and out.stat().st_size > 10_000


def test_diverging_run_marks_the_nan_step(tmp_path: Path) -> None:
    log = write_jsonl(_records(kind="diabetes", epochs=30, lr=0.3), tmp_path / "log.jsonl")
    OUT.mkdir(parents=True, exist_ok=True)
    out = OUT / "diverging-jsonl.png"
    assert main(["curves", str(log), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(PNG)


def test_a_file_that_is_not_a_log_is_a_usage_error(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("x,y\n1,2\n")
    assert main(["curves", str(data), "-o", str(tmp_path / "x.png")]) == 2
