"""Tiny real training runs on scikit-learn data, logged with each writer people use, for the NP5xx
tests: torch's SummaryWriter (TensorBoard), a CSV in Keras' CSVLogger format, a CSV in PyTorch
Lightning's CSVLogger format, and JSON lines.

Lightning itself is not installed here (it is a large dependency for a test fixture);
`write_lightning_csv` reproduces its CSVLogger's metrics.csv faithfully: one sorted header of every
key ever logged, and sparse rows (a row per logged training step with `train_loss_step`, a row per
validation with `val_loss`/`val_acc`, a row per epoch end with `train_loss_epoch`, the learning
rate from LearningRateMonitor as `lr-SGD` in rows of its own without an epoch), empty cells where
a row did not log a key. tests/fixtures/logs/lightning-2.6.6-metrics.csv is a file the real
CSVLogger (Lightning 2.6.6) wrote, for comparison; test_logs_reader.py reads it.

Every run is seeded and full-batch or few-batch, so each takes well under a second or two.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from sklearn.datasets import load_diabetes, load_digits
from torch import nn


@dataclass
class Epoch:
    epoch: int
    step: int
    train_loss: float
    val_loss: float
    val_acc: float | None
    lr: float
    step_losses: list[float] = field(default_factory=list)


def _digits(train_size: int) -> tuple[torch.Tensor, ...]:
    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    train, val = order[:train_size], order[1400:]
    return x[train], y[train], x[val], y[val]


def _diabetes() -> tuple[torch.Tensor, ...]:
    data = load_diabetes()
    x = torch.tensor(data.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(data.target, dtype=torch.float32)
    y = ((y - y.mean()) / y.std()).unsqueeze(1)
    return x[:350], y[:350], x[350:], y[350:]


def train(
    kind: str,
    epochs: int,
    lr: float,
    *,
    optimizer: str = "sgd",
    train_size: int = 1200,
    hidden: int = 64,
    batches: int = 4,
    schedule: str | None = None,
    early_stopping: int | None = None,
) -> list[Epoch]:
    """Train a small MLP on digits (classification) or diabetes (regression); one record per
    epoch, the validation after each epoch. `schedule`: "plateau" (ReduceLROnPlateau) or None."""
    torch.manual_seed(0)
    if kind == "digits":
        xt, yt, xv, yv = _digits(train_size)
        model: nn.Module = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))
        loss_fn: nn.Module = nn.CrossEntropyLoss()
    else:
        xt, yt, xv, yv = _diabetes()
        model = nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        loss_fn = nn.MSELoss()
    opt = (
        torch.optim.Adam(model.parameters(), lr=lr)
        if optimizer == "adam"
        else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    )
    scheduler = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=3)
        if schedule == "plateau"
        else None
    )
    records: list[Epoch] = []
    step = 0
    best, waited = math.inf, 0
    for epoch in range(epochs):
        model.train()
        losses = []
        for chunk in torch.arange(len(xt)).chunk(batches):
            opt.zero_grad()
            loss = loss_fn(model(xt[chunk]), yt[chunk])
            loss.backward()
            opt.step()
            losses.append(float(loss))
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(xv)
            val_loss = float(loss_fn(out, yv))
            acc = float((out.argmax(1) == yv).float().mean()) if kind == "digits" else None
        records.append(
            Epoch(
                epoch,
                step,
                sum(losses) / len(losses),
                val_loss,
                acc,
                opt.param_groups[0]["lr"],
                losses,
            )
        )
        if scheduler is not None:
            scheduler.step(val_loss)
        if early_stopping is not None:
            if val_loss < best:
                best, waited = val_loss, 0
            else:
                waited += 1
                if waited >= early_stopping:
                    break
        if not math.isfinite(val_loss) and epoch > 2:
            break
    return records


def write_keras_csv(records: list[Epoch], path: Path) -> Path:
    """Keras' CSVLogger: `epoch` first, then the logs' keys sorted, one row per epoch."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        keys = ["accuracy", "learning_rate", "loss", "val_accuracy", "val_loss"]
        writer.writerow(["epoch", *keys])
        for r in records:
            acc = "" if r.val_acc is None else r.val_acc
            writer.writerow([r.epoch, "", r.lr, r.train_loss, acc, r.val_loss])
    return path


def write_lightning_csv(records: list[Epoch], path: Path) -> Path:
    """Lightning's CSVLogger metrics.csv (see the module docstring)."""
    rows: list[dict[str, object]] = []
    for r in records:
        first = r.step - len(r.step_losses)
        for k, loss in enumerate(r.step_losses):
            # LearningRateMonitor's rows carry the step but no epoch.
            rows.append({"step": first + k, "lr-SGD": r.lr})
            rows.append({"epoch": r.epoch, "step": first + k, "train_loss_step": loss})
        val = {"epoch": r.epoch, "step": r.step - 1, "val_loss": r.val_loss}
        if r.val_acc is not None:
            val["val_acc"] = r.val_acc
        rows.append(val)
        rows.append({"epoch": r.epoch, "step": r.step - 1, "train_loss_epoch": r.train_loss})
    keys = sorted({k for row in rows for k in row})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_jsonl(records: list[Epoch], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for r in records:
            record = {
                "epoch": r.epoch,
                "step": r.step,
                "train_loss": r.train_loss,
                "val_loss": r.val_loss,
                "lr": r.lr,
            }
            if r.val_acc is not None:
                record["val_acc"] = r.val_acc
            handle.write(json.dumps(record) + "\n")  # json writes NaN as NaN, as Python does
    return path


def write_tensorboard(records: list[Epoch], folder: Path) -> Path:
    """torch.utils.tensorboard.SummaryWriter, tags as its tutorial spells them."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder))
    for r in records:
        writer.add_scalar("Loss/train", r.train_loss, r.epoch)
        writer.add_scalar("Loss/val", r.val_loss, r.epoch)
        if r.val_acc is not None:
            writer.add_scalar("Accuracy/val", r.val_acc, r.epoch)
        writer.add_scalar("lr", r.lr, r.epoch)
    writer.close()
    return next(folder.glob("events.out.tfevents.*"))


WRITERS = {
    "keras": lambda rs, d: write_keras_csv(rs, d / "training.log.csv"),
    "lightning": lambda rs, d: write_lightning_csv(rs, d / "metrics.csv"),
    "jsonl": lambda rs, d: write_jsonl(rs, d / "log.jsonl"),
    "tensorboard": lambda rs, d: write_tensorboard(rs, d / "tb"),
}
