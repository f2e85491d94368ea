"""NP501-NP505 on real training runs (tests/log_runs.py), each logged with every writer: the
TensorBoard SummaryWriter, Keras' and Lightning's CSVLogger formats, and JSON lines."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import pytest
from log_runs import WRITERS, Epoch, train

from nnprobe.core.config import Config, parse_config
from nnprobe.core.engine import inspect_paths
from nnprobe.core.finding import Finding

pytest.importorskip("tensorboard")

RUNS = {
    "diverges": dict(kind="diabetes", epochs=30, lr=0.3),
    "plateau": dict(kind="diabetes", epochs=40, lr=0.02),
    "plateau-decayed": dict(kind="diabetes", epochs=40, lr=0.02, schedule="plateau"),
    "overfits": dict(
        kind="digits", epochs=120, lr=0.01, optimizer="adam", train_size=100, hidden=256, batches=1
    ),
    "overfits-early-stopped": dict(
        kind="digits",
        epochs=120,
        lr=0.01,
        optimizer="adam",
        train_size=100,
        hidden=256,
        batches=1,
        early_stopping=3,
    ),
    "healthy": dict(kind="digits", epochs=12, lr=0.003, optimizer="adam"),
    "slow": dict(kind="digits", epochs=20, lr=1e-4, batches=1),
    "oscillates": dict(kind="diabetes", epochs=40, lr=0.12),
}


@functools.cache
def records(run: str) -> list[Epoch]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(**RUNS[run])  # type: ignore[arg-type]


def findings(run: str, writer: str, tmp_path: Path, config: Config | None = None) -> list[Finding]:
    path = WRITERS[writer](records(run), tmp_path)
    report = inspect_paths([str(path)], config or Config.default())
    assert report.files == 1
    return report.findings


def codes(found: list[Finding]) -> set[str]:
    return {f.code for f in found}


ALL_WRITERS = pytest.mark.parametrize("writer", sorted(WRITERS))


@ALL_WRITERS
def test_diverging_run_is_np501_naming_the_step_and_values(writer: str, tmp_path: Path) -> None:
    found = [f for f in findings("diverges", writer, tmp_path) if f.code == "NP501"]
    assert len(found) == 1
    message = found[0].message
    assert "nan" in message or "jumped to" in message
    assert "minimum" in message and "lower the learning rate by 10x" in message
    assert "lr 0.3" in message


@ALL_WRITERS
def test_plateau_at_constant_lr_is_np502_with_the_decay_suggestion(
    writer: str, tmp_path: Path
) -> None:
    found = [f for f in findings("plateau", writer, tmp_path) if f.code == "NP502"]
    assert len(found) == 1
    message = found[0].message
    assert "has not improved for" in message and "lr stayed 0.02" in message
    assert "ReduceLROnPlateau(optimizer, factor=0.1, patience=5)" in message
    assert "0.3/0.5" in message
    assert found[0].data["event"]["kind"] == "window"


@ALL_WRITERS
def test_plateau_with_reduce_lr_on_plateau_is_silent(writer: str, tmp_path: Path) -> None:
    assert "NP502" not in codes(findings("plateau-decayed", writer, tmp_path))


@ALL_WRITERS
def test_overfitting_run_is_np503(writer: str, tmp_path: Path) -> None:
    found = [f for f in findings("overfits", writer, tmp_path) if f.code == "NP503"]
    assert len(found) == 1
    assert "rose from" in found[0].message and "stop early" in found[0].message


@ALL_WRITERS
def test_same_run_with_early_stopping_is_silent(writer: str, tmp_path: Path) -> None:
    assert codes(findings("overfits-early-stopped", writer, tmp_path)) == set()


@ALL_WRITERS
def test_healthy_run_raises_nothing(writer: str, tmp_path: Path) -> None:
    assert findings("healthy", writer, tmp_path) == []


@ALL_WRITERS
def test_tiny_learning_rate_is_np505(writer: str, tmp_path: Path) -> None:
    found = [f for f in findings("slow", writer, tmp_path) if f.code == "NP505"]
    assert len(found) == 1 and "peaked at 0.08" in found[0].message


@ALL_WRITERS
def test_lr_near_the_edge_oscillates_np504(writer: str, tmp_path: Path) -> None:
    found = [f for f in findings("oscillates", writer, tmp_path) if f.code == "NP504"]
    assert len(found) == 1 and "evaluations" in found[0].message


def test_csv_findings_sit_on_the_row_they_read(tmp_path: Path) -> None:
    found = findings("plateau", "keras", tmp_path)
    (np502,) = [f for f in found if f.code == "NP502"]
    lines = (tmp_path / "training.log.csv").read_text().splitlines()
    epoch = np502.message.split("epochs ")[1].split("-")[1].split(":")[0]
    assert lines[np502.range.start.line - 1].startswith(f"{epoch},")


def test_thresholds_are_options(tmp_path: Path) -> None:
    config = parse_config({"rules": {"NP502": {"patience": 100}}})
    assert "NP502" not in codes(findings("plateau", "jsonl", tmp_path, config))


def test_column_names_can_be_configured(tmp_path: Path) -> None:
    log = tmp_path / "odd.csv"
    rows = ["epoch,objective,holdout,rate"]
    rows += [f"{e},{1.0 / (e + 1)},{0.5 if e > 2 else 1.0 - e * 0.1},0.1" for e in range(12)]
    log.write_text("\n".join(rows) + "\n")
    config = parse_config({"logs": {"columns": {"val-loss": "holdout", "lr": "rate"}}})
    assert "NP502" in codes(inspect_paths([str(log)], config).findings)
    assert "NP502" not in codes(inspect_paths([str(log)], Config.default()).findings)


def test_csv_that_is_not_a_log_is_skipped_in_a_walk_and_reported_when_named(
    tmp_path: Path,
) -> None:
    (tmp_path / "data.csv").write_text("x,y,label\n1,2,3\n")
    (tmp_path / "rows.jsonl").write_text('{"text": "hello", "label": 1}\n')
    walked = inspect_paths([str(tmp_path)], Config.default())
    assert walked.findings == [] and walked.files == 0
    named = inspect_paths([str(tmp_path / "data.csv")], Config.default())
    assert [f.code for f in named.findings] == ["NP901"]
    assert "not a training log" in named.findings[0].message


def test_tfevents_files_are_found_in_a_directory_walk(tmp_path: Path) -> None:
    WRITERS["tensorboard"](records("diverges"), tmp_path / "runs")
    report = inspect_paths([str(tmp_path)], Config.default())
    assert report.files == 1 and "NP501" in codes(report.findings)


@pytest.mark.parametrize(
    ("logs", "message"),
    [
        ({"columns": {"bogus": "x"}}, "unknown role 'bogus'"),
        ({"columns": {"lr": 3}}, "columns.lr must be a column name"),
        ({"script": "train.sh"}, "script must name a .py file"),
        ({"patterns": "**/*.csv"}, "patterns must be a list"),
        ({"colums": {}}, "unknown key 'colums'"),
    ],
)
def test_bad_logs_settings_name_the_key(logs: dict[str, object], message: str) -> None:
    from nnprobe.core.config import ConfigError

    with pytest.raises(ConfigError, match="tool.nnprobe.logs") as info:
        parse_config({"logs": logs})
    assert message in str(info.value)


def test_cli_fails_on_a_diverged_run_and_prints_the_evidence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nnprobe.cli import main

    WRITERS["lightning"](records("diverges"), tmp_path / "lightning_logs" / "version_0")
    assert main(["inspect", "--no-color", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "metrics.csv" in out and "NP501" in out and "lower the learning rate by 10x" in out
