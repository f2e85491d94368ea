"""The log readers: incremental reading of files still being written, partial last lines,
rewritten files, and the copies of log findings onto the training script's lines."""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import pytest
from log_runs import train, write_jsonl, write_tensorboard
from rule_helpers import apply_edits

from nnprobe.core.config import Config
from nnprobe.core.engine import inspect_paths
from nnprobe.core.files import Target
from nnprobe.inspectors.training_logs import check_log
from nnprobe.logs import LogReader


def test_csv_is_read_incrementally_and_a_partial_line_waits(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,train_loss,val_loss\n0,2.0,2.1\n1,1.5,1.6\n2,1.2")
    reader = LogReader(log)
    run = reader.update()
    assert run.val_loss is not None and run.val_loss.values == [2.1, 1.6]
    offset = reader.offset
    with log.open("a") as handle:
        handle.write(",1.3\n3,1.0,1.1\n")
    run = reader.update()
    assert run.val_loss is not None and run.val_loss.values == [2.1, 1.6, 1.3, 1.1]
    assert run.val_loss.lines == [2, 3, 4, 5]
    assert reader.offset > offset


def test_a_rewritten_csv_is_read_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "metrics.csv"
    log.write_text("epoch,step,val_loss\n0,9,1.0\n")
    reader = LogReader(log)
    reader.update()
    # Lightning's CSVLogger rewrites the file with a wider header when a new metric appears.
    log.write_text("epoch,lr-SGD,step,val_loss\n0,0.1,9,1.0\n1,0.1,19,0.9\n")
    run = reader.update()
    assert run.val_loss is not None and run.val_loss.values == [1.0, 0.9]
    assert run.lr is not None and run.lr.name == "lr-SGD"


def test_jsonl_skips_garbage_and_waits_for_the_last_line(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"epoch": 0, "loss": 1.0}\nnot json\n[1, 2]\n{"epoch": 1, "lo')
    reader = LogReader(log)
    assert reader.update().series["loss"].values == [1.0]
    with log.open("a") as handle:
        handle.write('ss": NaN}\n')
    assert str(reader.update().series["loss"].values[-1]) == "nan"


def test_a_growing_tensorboard_file_is_read_incrementally(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step in range(3):
        writer.add_scalar("loss/train", 1.0 / (step + 1), step)
    writer.flush()
    log = next(tmp_path.glob("events.out.tfevents.*"))
    reader = LogReader(log)
    assert reader.update().series["loss/train"].values == pytest.approx([1.0, 0.5, 1 / 3])
    for step in range(3, 5):
        writer.add_scalar("loss/train", 1.0 / (step + 1), step)
    writer.flush()
    run = reader.update()
    assert run.series["loss/train"].steps == [0, 1, 2, 3, 4]
    writer.close()


def test_a_log_read_twice_with_one_reader_keeps_its_findings(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = train("diabetes", 30, 0.3)
    log = write_jsonl(records[:1], tmp_path / "log.jsonl")
    reader = LogReader(log)
    target = Target(log, log.as_posix(), explicit=True)
    assert check_log(target, Config.default(), reader).findings == []
    with log.open("a") as handle:
        for r in records[1:]:
            handle.write(json.dumps({"epoch": r.epoch, "train_loss": r.train_loss}) + "\n")
    assert [f.code for f in check_log(target, Config.default(), reader).findings] == ["NP501"]


SCRIPT = textwrap.dedent(
    """\
    import json

    import torch
    from torch import nn

    model = nn.Linear(10, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02)


    def main():
        with open("runs/log.jsonl", "w") as log:
            for epoch in range(40):
                loss = model(torch.randn(8, 10)).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                log.write(json.dumps({"epoch": epoch, "train_loss": loss.item()}) + "\\n")
    """
)


def test_findings_are_copied_onto_the_script_with_a_scheduler_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = train("diabetes", 40, 0.02)
    (tmp_path / "train.py").write_text(SCRIPT)
    write_jsonl(records, tmp_path / "runs" / "log.jsonl")
    monkeypatch.chdir(tmp_path)
    report = inspect_paths(["runs/log.jsonl"], Config.default(root=tmp_path))
    on_script = [f for f in report.findings if f.path == "train.py"]
    assert [f.code for f in on_script] == ["NP502"]
    np502 = on_script[0]
    assert np502.range.start.line == 7 and np502.message.startswith("log.jsonl: ")
    assert np502.fix is not None
    fixed = apply_edits(SCRIPT, np502.fix.edits)
    assert fixed.splitlines()[7] == (
        "scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=5)"
    )
    assert "scheduler.step(val_loss)" in np502.fix.message


def test_tensorboard_log_lands_on_the_script_that_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = train("diabetes", 30, 0.3)
    script = SCRIPT.replace("import json\n", "from torch.utils.tensorboard import SummaryWriter\n")
    (tmp_path / "train.py").write_text(script)
    (tmp_path / "other.py").write_text("import torch\nprint(torch.optim)\n")
    write_tensorboard(records, tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    report = inspect_paths(["runs"], Config.default(root=tmp_path))
    on_script = [f for f in report.findings if f.path == "train.py"]
    assert [f.code for f in on_script] == ["NP501"]
    assert on_script[0].range.start.line == 7


def test_a_metrics_csv_written_by_lightning_itself() -> None:
    """Written by Lightning 2.6.6's CSVLogger with LearningRateMonitor (3 epochs on digits)."""
    fixture = Path(__file__).parent / "fixtures" / "logs" / "lightning-2.6.6-metrics.csv"
    run = LogReader(fixture).update()
    assert [run.role_name(r) for r in ("train-loss", "val-loss", "val-metric", "lr")] == [
        "train_loss_epoch",
        "val_loss",
        "val_acc",
        "lr-SGD",
    ]
    assert run.val_loss is not None and run.val_loss.epochs == [0, 1, 2]
    assert run.val_loss.steps == [3, 7, 11] and run.val_loss.lines == [7, 14, 21]
    assert inspect_paths([str(fixture)], Config.default()).findings == []
