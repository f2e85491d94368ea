"""The text renderer: finding lines, caret snippets, fix diffs, statistics and the summary."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from render_samples import TRAIN_PY, read_source, sample_report

from nnprobe.core.engine import Report
from nnprobe.core.finding import Confidence, Edit, Evidence, Finding, Fix, Range, Severity
from nnprobe.report import text
from nnprobe.report.source import apply_edits, read_text_file

Golden = Callable[[str, str], None]


def finding(severity: Severity = Severity.ERROR, **changes: object) -> Finding:
    base = Finding(
        code="NP906",
        name="syntax-error",
        severity=severity,
        confidence=Confidence.HIGH,
        message="msg",
        path="x.py",
        range=Range.of(1, 1, 1, 2),
    )
    return base.with_(**changes)


def test_default_output_matches_golden(golden: Golden) -> None:
    golden("text.txt", text.render(sample_report(), read_source=read_source))


def test_show_fixes_matches_golden(golden: Golden) -> None:
    rendered = text.render(sample_report(), show_fixes=True, read_source=read_source)
    golden("text_show_fixes.txt", rendered)


def test_statistics_matches_golden(golden: Golden) -> None:
    golden("text_statistics.txt", text.render(sample_report(), statistics=True))


def test_header_and_caret_span() -> None:
    out = text.render(sample_report(), read_source=read_source)
    assert "train.py:7:28: NP990 [warning] cross_entropy receives softmax" in out
    lines = out.splitlines()
    source_row = next(i for i, line in enumerate(lines) if "F.softmax(out" in line)
    caret_row = lines[source_row + 1]
    start = lines[source_row].index("F.softmax")
    assert caret_row.index("^") == start
    assert caret_row.count("^") == len("F.softmax(out, dim=1)")


def test_no_snippet_when_file_unreadable_or_finding_is_file_level() -> None:
    out = text.render(sample_report(), read_source=read_source)
    blocks = out.split("\n\n")
    model = next(b for b in blocks if b.startswith("checkpoints/model 1.pt"))
    assert model.count("\n") == 0
    internal = next(b for b in blocks if "NP907" in b)
    assert internal.count("\n") == 0


def test_summary_line_is_last() -> None:
    out = text.render(sample_report(), read_source=read_source)
    assert out.endswith("\n2 errors, 1 warning, 1 info in 3 files\n")


@pytest.mark.parametrize(
    ("severities", "files", "expected"),
    [
        ([], 4, "No problems found in 4 files."),
        ([], 1, "No problems found in 1 file."),
        ([], 0, "No problems found in 0 files."),
        ([Severity.ERROR], 1, "1 error in 1 file"),
        ([Severity.WARNING, Severity.WARNING], 2, "2 warnings in 2 files"),
        ([Severity.INFO] * 3, 1, "3 info in 1 file"),
        (
            [Severity.ERROR] * 3 + [Severity.WARNING] * 2 + [Severity.INFO],
            4,
            "3 errors, 2 warnings, 1 info in 4 files",
        ),
    ],
)
def test_summary_counts_and_plurals(severities: list[Severity], files: int, expected: str) -> None:
    report = Report(findings=[finding(s) for s in severities], files=files)
    assert text.summary(report) == expected


def test_quiet_prints_findings_only() -> None:
    out = text.render(sample_report(), quiet=True, read_source=read_source)
    assert "in 3 files" not in out
    assert "NP906" in out
    assert text.render(Report(files=2), quiet=True) == ""


def test_colour_only_when_asked() -> None:
    plain = text.render(sample_report(), read_source=read_source)
    coloured = text.render(sample_report(), color=True, read_source=read_source)
    assert "\x1b[" not in plain
    assert "\x1b[31m" in coloured  # errors in red
    assert "\x1b[33m" in coloured  # warnings in yellow


def test_statistics_sorted_by_count_then_code() -> None:
    report = Report(
        findings=[
            finding(code="NP907", name="internal-error"),
            finding(code="NP901", name="load-failed"),
            finding(code="NP901", name="load-failed"),
            finding(code="NP906", name="syntax-error"),
        ],
        files=1,
    )
    rows = text.render(report, statistics=True, quiet=True).splitlines()
    assert [row.split("\t")[:2] for row in rows] == [["2", "NP901"], ["1", "NP906"], ["1", "NP907"]]
    assert rows[0].endswith("load-failed")


def test_control_characters_in_source_do_not_reach_the_terminal() -> None:
    report = Report(findings=[finding()], files=1)
    out = text.render(report, read_source=lambda _: 'x = "\x1b[2J"\n')
    assert "\x1b" not in out


def test_tabs_and_wide_characters_keep_carets_aligned() -> None:
    source = '\tname = "数据"; lr = 0.5\n'
    column = source.index("lr") + 1
    report = Report(findings=[finding(range=Range.of(1, column, 1, column + 2))], files=1)
    rows = text.render(report, read_source=lambda _: source).splitlines()
    code_row, caret_row = rows[2], rows[3]
    assert caret_row.startswith("  | \t")
    # Each wide character takes two cells, so the caret sits under "lr" on screen.
    prefix = code_row.split(" | ", 1)[1][: column - 1]
    pad = caret_row.split(" | ", 1)[1][: caret_row.split(" | ", 1)[1].index("^")]
    assert len(pad) == len(prefix) + 2
    assert caret_row.endswith("^^")


def test_range_past_end_of_file_has_no_snippet() -> None:
    report = Report(findings=[finding(range=Range.of(50, 1, 50, 2))], files=1)
    out = text.render(report, quiet=True, read_source=lambda _: "x = 1\n")
    assert out == "x.py:50:1: NP906 [error] msg\n"


def test_fix_without_readable_file_says_so() -> None:
    fixed = finding(fix=Fix("drop it", (Edit(Range.of(1, 1, 1, 2), ""),)))
    out = text.render(Report([fixed], 1), show_fixes=True, read_source=lambda _: None)
    assert "= fix (safe): drop it" in out
    assert "no preview" in out


def test_apply_edits() -> None:
    text_ = "a = 1\r\nb = 2\nc = 3\n"
    edits = [
        Edit(Range.of(1, 5, 1, 6), "10"),
        Edit(Range.of(2, 1, 2, 1), "# note\n"),
        Edit(Range.of(3, 1, 4, 1), ""),
    ]
    assert apply_edits(text_, edits) == "a = 10\r\n# note\nb = 2\n"
    assert apply_edits("x", [Edit(Range.of(1, 50, 1, 60), "!")]) == "x!"


def test_read_text_file(tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "ok.py").write_text("# coding: latin-1\nx = 'é'\n", encoding="latin-1")
    (folder / "blob.pt").write_bytes(b"PK\x03\x04\x00\x00")
    assert read_text_file(str(folder / "ok.py")) == "# coding: latin-1\nx = 'é'\n"
    assert read_text_file(str(folder / "blob.pt")) is None
    assert read_text_file(str(folder / "missing.py")) is None
    assert read_text_file(str(folder)) is None


def test_source_read_lazily_and_once() -> None:
    calls: list[str] = []

    def reader(path: str) -> str | None:
        calls.append(path)
        return TRAIN_PY

    report = Report(
        findings=[
            finding(path="train.py"),
            finding(path="train.py", range=Range.of(2, 1, 2, 2)),
            finding(path="ckpt.pt", evidence=Evidence.WEIGHTS, range=Range.of(1, 1, 1, 1)),
        ],
        files=2,
    )
    text.render(report, read_source=reader)
    assert calls == ["train.py"]
    text.render(report, statistics=True, read_source=reader)
    assert calls == ["train.py"]
