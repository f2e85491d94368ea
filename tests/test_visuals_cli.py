"""`nnprobe embed|filters|activations|top|occlusion` and `nnprobe report`, in-process, on a digits
CNN trained in the session; outputs saved under test-output/visuals-cli/ to look at."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from digits_cnn import trained, write_workspace

from nnprobe.cli import main

OUT = Path(__file__).resolve().parent.parent / "test-output" / "visuals-cli"
TRAIN = """import torch
from model import DigitsCNN

model = DigitsCNN()
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
torch.save(model.state_dict(), "cnn.pt")
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    write_workspace(root, trained())
    (root / "train.py").write_text(TRAIN, encoding="utf-8")
    return root


def test_picture_commands_write_pngs(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    OUT.mkdir(parents=True, exist_ok=True)
    common = ["--model", "model.py:DigitsCNN", "--probe", "probe.npz"]
    for argv in (
        ["embed", "cnn.pt", "--method", "pca"],
        ["filters", "cnn.pt"],
        ["activations", "cnn.pt", "--layer", "relu2", "--input", "3"],
        ["top", "cnn.pt", "--layer", "relu2", "--unit", "7"],
        ["occlusion", "cnn.pt", "--input", "10"],
    ):
        out = root / f"{argv[0]}.png"
        assert main([*argv, *common, "-o", str(out)]) == 0, argv
        assert out.read_bytes().startswith(b"\x89PNG")
        shutil.copy(out, OUT / out.name)


def test_picture_command_errors_are_one_line(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(root)
    argv = ["top", "cnn.pt", "--model", "model.py:DigitsCNN", "--unit", "99", "-o", "x.png"]
    assert main([*argv, "--probe", "probe.npz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--unit 99" in err
    assert main(["filters", "cnn.pt", "--no-import", "-o", "x.png"]) == 2
    assert "not allowed" in capsys.readouterr().err


def test_report_is_one_offline_html_file(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    out = root / "report.html"
    argv = ["report", "train.py", "cnn.pt", "--model", "model.py:DigitsCNN", "--probe"]
    assert main([*argv, "probe.npz", "--no-probe", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    shutil.copy(out, OUT / "report.html")
    # Offline: nothing is fetched; the only URLs are links to the rule pages.
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=\"https?:", text)
    assert re.search(r'<a href="[^"]*NP101[^"]*">NP101</a>', text)
    assert "<h3>train.py</h3>" in text
    assert text.count('<img src="data:image/png;base64,') == 4
    assert text.count("<circle ") == 1797 and "<script>" in text


def test_report_draws_the_curves_of_training_logs(tmp_path: Path) -> None:
    # A metrics.csv written by Lightning's real CSVLogger, beside a file that is not a log.
    logs = tmp_path / "lightning_logs" / "version_0"
    logs.mkdir(parents=True)
    fixture = Path(__file__).parent / "fixtures" / "logs" / "lightning-2.6.6-metrics.csv"
    shutil.copy(fixture, logs / "metrics.csv")
    (tmp_path / "notes.csv").write_text("name,colour\na,red\n", encoding="utf-8")
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    OUT.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, OUT / "report-logs.html")
    assert "Training curves of metrics.csv" in text
    assert text.count('<img src="data:image/png;base64,') == 1
    assert "notes.csv" not in text  # not a training log: skipped, as in a directory walk
