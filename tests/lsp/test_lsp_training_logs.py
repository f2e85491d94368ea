"""A training log that grows while the server watches it: NP5xx diagnostics appear on the log and
on the training script's optimizer line as the run goes on, and nnprobe.curves draws it."""

from __future__ import annotations

import asyncio
import base64
import csv
import warnings
from pathlib import Path
from typing import Any

import pytest
from log_runs import Epoch, train
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
pytest.importorskip("matplotlib")

SCRIPT = """\
import csv

import torch
from torch import nn

model = nn.Linear(10, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.02)

with open("runs/metrics.csv", "w") as handle:
    writer = csv.writer(handle)
    for epoch in range(40):
        loss = model(torch.randn(8, 10)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        writer.writerow([epoch, loss.item()])
"""
FILES = {"train.py": SCRIPT}
OUT = Path(__file__).resolve().parents[2] / "test-output" / "curves"


def write_rows(path: Path, records: list[Epoch], mode: str) -> None:
    with path.open(mode, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if mode == "w":
            writer.writerow(["epoch", "step", "train_loss", "val_loss", "lr"])
        for r in records:
            writer.writerow([r.epoch, r.step, r.train_loss, r.val_loss, r.lr])


def changed(client: LanguageClient, path: Path, kind: types.FileChangeType) -> None:
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(changes=[types.FileEvent(uri=path.as_uri(), type=kind)])
    )


async def log_watchers(client: LanguageClient) -> set[str]:
    """The globs of the server's log watcher; its registration request may still be on its way
    when the first test starts (it is a request to the client, with nothing to wait on)."""
    for _ in range(100):
        for registration in getattr(client, "registrations", []):
            if registration.id == "nnprobe-log-files":
                options = registration.register_options
                watchers = options["watchers"] if isinstance(options, dict) else options.watchers
                return {
                    w["globPattern"] if isinstance(w, dict) else w.glob_pattern for w in watchers
                }
        await asyncio.sleep(0.05)
    return set()


def codes(params: Any) -> set[str]:
    return {str(d.code) for d in params.diagnostics}


async def test_diagnostics_follow_a_growing_log(client: LanguageClient, workspace: Path) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    assert {"**/metrics.csv", "**/events.out.tfevents.*"} <= await log_watchers(client)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = train("diabetes", 40, 0.02)
    log = workspace / "runs" / "metrics.csv"
    log.parent.mkdir()
    write_rows(log, records[:8], "w")
    changed(client, log, types.FileChangeType.Created)
    first = await recorder.wait(log.as_uri())
    assert "NP502" not in codes(first)

    with log.open("a") as handle:
        handle.write("8,")  # the writer is mid-line: read without error, and later in full
    changed(client, log, types.FileChangeType.Changed)
    with log.open("a") as handle:
        handle.write(f"{records[8].step},{records[8].train_loss},{records[8].val_loss},0.02\n")
    write_rows(log, records[9:], "a")
    changed(client, log, types.FileChangeType.Changed)
    on_log = await recorder.wait(log.as_uri(), lambda p: "NP502" in codes(p))
    (np502,) = [d for d in on_log.diagnostics if d.code == "NP502"]
    assert "lr stayed 0.02" in np502.message and np502.source == "nnprobe"

    script = (workspace / "train.py").as_uri()
    on_script = await recorder.wait(script, lambda p: "NP502" in codes(p))
    (copy,) = [d for d in on_script.diagnostics if d.code == "NP502"]
    assert copy.range.start.line == 6 and copy.message.startswith("metrics.csv: ")
    assert copy.data["fix"]["edits"][0]["newText"].startswith(
        "scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer"
    )

    picture = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.curves", arguments=[log.as_uri()])
    )
    assert picture["kind"] == "image" and picture["mime"] == "image/png"
    png = base64.b64decode(picture["data"])
    assert png.startswith(b"\x89PNG")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "lsp-plateau.png").write_bytes(png)

    log.unlink()
    changed(client, log, types.FileChangeType.Deleted)
    cleared = await recorder.wait(script, lambda p: "NP502" not in codes(p))
    assert cleared is not None
