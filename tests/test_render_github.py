"""GitHub workflow-command annotations, parsed back the way the Actions runner reads them."""

from __future__ import annotations

import re
from urllib.parse import unquote

from render_samples import sample_report

from nnprobe.core.engine import Report
from nnprobe.core.finding import Confidence, Finding, Range, Severity
from nnprobe.report import github

_COMMAND = re.compile(r"^::(?P<command>[a-z]+) (?P<properties>[^:]*)::(?P<message>.*)$")


def parse(line: str) -> tuple[str, dict[str, str], str]:
    match = _COMMAND.match(line)
    assert match, line
    properties = {}
    for pair in match["properties"].split(","):
        key, value = pair.split("=", 1)
        properties[key] = unquote(value)
    return match["command"], properties, unquote(match["message"])


def test_one_line_per_finding() -> None:
    lines = github.render(sample_report()).splitlines()
    assert len(lines) == 4
    parsed = [parse(line) for line in lines]
    commands = {props["title"]: command for command, props, _ in parsed}
    assert commands == {
        "nnprobe (NP901)": "error",
        "nnprobe (NP907)": "notice",
        "nnprobe (NP990)": "warning",
        "nnprobe (NP906)": "error",
    }
    _, props, message = next(p for p in parsed if p[1]["title"] == "nnprobe (NP990)")
    assert props == {
        "file": "train.py",
        "line": "7",
        "col": "28",
        "endLine": "7",
        "endColumn": "49",
        "title": "nnprobe (NP990)",
    }
    assert message == "cross_entropy receives softmax probabilities; it expects logits"


def test_escaping() -> None:
    finding = Finding(
        code="NP906",
        name="syntax-error",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        message="100% wrong\r\nsecond line: a, b",
        path="dir,with:odd%/x.py",
        range=Range.of(2, 3, 4, 1),
    )
    (line,) = github.render(Report([finding], 1)).splitlines()
    assert line == (
        "::error file=dir%2Cwith%3Aodd%25/x.py,line=2,endLine=4,title=nnprobe (NP906)"
        "::100%25 wrong%0D%0Asecond line: a, b"
    )
    command, props, message = parse(line)
    assert command == "error"
    assert props["file"] == "dir,with:odd%/x.py"
    assert "col" not in props  # columns only on single-line ranges
    assert message == finding.message


def test_empty_report_prints_nothing() -> None:
    assert github.render(Report(files=3)) == ""
