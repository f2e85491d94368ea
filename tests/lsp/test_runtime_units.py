"""Glue of the runtime half of the server, without a server: polling snapshots and the words a
hover and a code lens use for a probe's statistics."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from nnprobe.server.checkpoint_watch import changes, scan
from nnprobe.server.probe_results import ProbeRecord, age, hover_markdown, lens_title


def test_snapshots_report_what_a_watcher_would(tmp_path: Path) -> None:
    kept = tmp_path / "runs" / "a.pt"
    kept.parent.mkdir()
    kept.write_bytes(b"1")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    venv = tmp_path / "env"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "w.pt").write_bytes(b"1")
    first = scan(tmp_path, lambda path: False)
    assert list(first) == [str(kept)]
    kept.write_bytes(b"22")
    (tmp_path / "runs" / "b.onnx").write_bytes(b"1")
    second = scan(tmp_path, lambda path: False)
    events = {(Path(e.uri).name, e.type) for e in changes(first, second)}
    assert events == {
        ("a.pt", types.FileChangeType.Changed),
        ("b.onnx", types.FileChangeType.Created),
    }
    kept.unlink()
    events = {(Path(e.uri).name, e.type) for e in changes(second, scan(tmp_path, lambda p: False))}
    assert events == {("a.pt", types.FileChangeType.Deleted)}


RESULT = {
    "modules": {
        "features.3": {"kind": "relu", "dead_fraction": 0.41, "mean": 0.2, "std": 0.5},
        "features": {"kind": "sequential"},
        "fc": {"kind": "linear", "weight_std": 0.3, "reference_std": 0.1, "reference": "He"},
    },
    "script": {
        "path": "/w/train.py",
        "modules": {"features": [5, 9], "features.3": [8, 8], "fc": [10, 10]},
        "model": {"name": "Net", "line": 3, "kind": "class"},
    },
    "measured_on": "64 synthetic inputs",
}


def test_lens_title_and_hover_read_like_the_issue_says() -> None:
    record = ProbeRecord.from_result(Path("/w/runs/a.pt"), RESULT, issues=3)
    now = record.probed_at + 125
    assert lens_title(record, now) == "3 issues · 41% dead in features.3 · probed 2 min ago"
    assert record.module_at(8) == "features.3"  # the innermost module on that line
    assert record.module_at(6) == "features"
    assert record.module_at(11) is None
    text = hover_markdown(record, "features.3", Path("/w"), now)
    assert "`features.3` (relu)" in text and "| dead units | 41% |" in text
    assert "From `runs/a.pt`, probed 2 min ago, on 64 synthetic inputs." in text
    assert "| weight std | 0.3 (reference 0.1, He) |" in hover_markdown(record, "fc", None, now)


def test_ages() -> None:
    assert [age(s) for s in (5, 61, 3 * 3600, 3 * 86400)] == [
        "just now",
        "1 min ago",
        "3 h ago",
        "3 days ago",
    ]
