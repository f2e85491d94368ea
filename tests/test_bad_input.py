"""Whatever a user points nnprobe at, the run goes on and says what it could not read."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnprobe.core import registry
from nnprobe.core.config import Config
from nnprobe.core.engine import inspect_paths
from nnprobe.core.finding import Confidence, Severity
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.handler import check_text

TORCH_SCRIPT = "import torch\nimport torch.nn as nn\n\nmodel = nn.Linear(3, 1)\n"


def codes(report_findings: list) -> list[tuple[str, str, int]]:
    return [(Path(f.path).name, f.code, f.range.start.line) for f in report_findings]


def test_syntax_error_is_reported_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import torch\n\nx = torch.zeros(3\ny = 2\n")
    report = inspect_paths([str(tmp_path)], Config.default(root=tmp_path))
    [finding] = report.findings
    assert finding.code == "NP906"
    assert finding.range.start.line == 3
    assert "never closed" in finding.message or "syntax" in finding.message
    assert report.files == 1


def test_one_bad_file_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "a_binary.py").write_bytes(b"import torch\n\x00\x01\x02\xff")
    (tmp_path / "b_latin.py").write_bytes(b"import torch\nname = '\xe9t\xe9'\n")
    (tmp_path / "c_broken.py").write_text("import torch\ndef f(:\n")
    (tmp_path / "d_empty.py").write_text("")
    (tmp_path / "e_ok.py").write_text(TORCH_SCRIPT)
    report = inspect_paths([str(tmp_path)], Config.default(root=tmp_path))
    found = codes(report.findings)
    assert ("a_binary.py", "NP901", 1) in found
    assert ("b_latin.py", "NP901", 1) in found
    assert ("c_broken.py", "NP906", 2) in found
    assert not [f for f in found if f[0] in ("d_empty.py", "e_ok.py")]
    binary = next(f for f in report.findings if f.path.endswith("a_binary.py"))
    assert "binary" in binary.message
    latin = next(f for f in report.findings if f.path.endswith("b_latin.py"))
    assert "0xe9" in latin.message


def test_declared_encoding_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: latin-1 -*-\nimport torch\nname = '\xe9'\n")
    report = inspect_paths([str(tmp_path)], Config.default(root=tmp_path))
    assert report.findings == []
    assert report.files == 1


def test_scripts_that_do_not_use_torch_are_skipped_silently(tmp_path: Path) -> None:
    (tmp_path / "util.py").write_text("def f(:\n")  # broken, but not ours
    (tmp_path / "model.py").write_text(TORCH_SCRIPT)
    report = inspect_paths([str(tmp_path)], Config.default(root=tmp_path))
    assert report.findings == []
    assert report.files == 1


def test_missing_path_is_listed_and_the_rest_still_runs(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import torch\nx = (\n")
    report = inspect_paths([str(tmp_path / "nope.py"), str(tmp_path)], Config.default())
    assert report.missing == [str(tmp_path / "nope.py")]
    assert [f.code for f in report.findings] == ["NP906"]


def test_skipped_directories_and_excludes(tmp_path: Path) -> None:
    for folder in (".git", "node_modules", ".venv", "legacy"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.py").write_text("import torch\nx = (\n")
    venv = tmp_path / "myenv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    (venv / "y.py").write_text("import torch\nx = (\n")
    config = Config.default(root=tmp_path)
    config.exclude = ["legacy"]
    report = inspect_paths([str(tmp_path)], config)
    assert report.findings == []


def test_huge_script_is_checked(tmp_path: Path) -> None:
    lines = ["import torch", "import torch.nn as nn", ""]
    lines += [f"layer_{i} = nn.Linear({i % 50 + 1}, 4)" for i in range(50_000)]
    lines.append("x = (")
    (tmp_path / "huge.py").write_text("\n".join(lines) + "\n")
    report = inspect_paths([str(tmp_path)], Config.default(root=tmp_path))
    assert [(f.code, f.range.start.line) for f in report.findings] == [("NP906", 50_004)]


def test_deeply_nested_expression_does_not_crash() -> None:
    text = "import torch\nx = " + "(" * 300 + "1" + ")" * 300 + "\n"
    findings = check_text(text, "deep.py", Config.default())
    assert all(f.code in ("NP901", "NP906") for f in findings)


class Crashes(StaticRule):
    """Crashes on purpose."""

    code = "NP199"
    name = "crashes-on-purpose"
    message = "never"
    severity = Severity.ERROR
    confidence = Confidence.HIGH

    def check(self, ctx: object) -> list:
        raise RuntimeError("boom")


def test_a_crashing_rule_is_isolated_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    registry.all_rules()
    monkeypatch.setitem(registry._RULES, "NP199", Crashes)
    config = Config.default()
    text = "import torch\noptimizer = torch.optim.SGD([], lr=5.0)\n"
    findings = check_text(text, "t.py", config)
    crash = [f for f in findings if f.code == "NP907"]
    assert len(crash) == 1
    assert "NP199" in crash[0].message and "boom" in crash[0].message
    assert "Traceback" not in crash[0].message
    assert any(f.code == "NP101" for f in findings), "the other rules still report"


def test_form_feed_does_not_shift_ranges() -> None:
    # str.splitlines() treats \f as a line break; Python does not.
    text = "import torch\n\x0c\nx = 1  # \x0c comment\noptimizer = torch.optim.SGD([], lr=5.0)\n"
    findings = [f for f in check_text(text, "t.py", Config.default()) if f.code == "NP101"]
    assert [(f.range.start.line, f.range.start.column) for f in findings] == [(4, 33)]
