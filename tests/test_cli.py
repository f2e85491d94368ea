"""The command line in-process: formats, exit codes, selection, config errors and output files.

Inputs are files nnprobe has no handler for (`.xyz`), which the engine reports as NP901 whatever
rules exist, so these tests do not move when the NP1xx rules change.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from nnprobe import __version__
from nnprobe.cli import main
from nnprobe.core.docs import render_rule_page
from nnprobe.core.registry import all_rules, get_rule


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with two unsupported files and an empty config, as the cwd."""
    (tmp_path / "nnprobe.toml").write_text("", encoding="utf-8")
    (tmp_path / "a.xyz").write_text("alpha\n", encoding="utf-8")
    (tmp_path / "b.xyz").write_bytes(b"\x00\x01")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("NNPROBE_DEBUG", raising=False)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_output(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "inspect", "a.xyz", "b.xyz")
    assert code == 1
    assert err == ""
    assert "a.xyz:1:1: NP901 [error] nnprobe cannot inspect '.xyz' files" in out
    assert "b.xyz:1:1: NP901 [error]" in out
    assert out.endswith("2 errors in 2 files\n")
    assert "\x1b[" not in out  # captured stdout is not a terminal


def test_json_output_validates(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--output-format", "json", "a.xyz")
    assert code == 1
    data = json.loads(out)
    schema = json.loads(resources.files("nnprobe.report").joinpath("json_schema.json").read_text())
    jsonschema.validate(data, schema)
    assert data["summary"] == {"files": 1, "errors": 1, "warnings": 0, "infos": 0}
    assert data["findings"][0]["code"] == "NP901"


def test_sarif_output(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--output-format", "sarif", "a.xyz")
    assert code == 1
    run_ = json.loads(out)["runs"][0]
    assert [r["ruleId"] for r in run_["results"]] == ["NP901"]
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.resolve().as_uri() + "/"


def test_github_output(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--output-format", "github", "a.xyz")
    assert code == 1
    assert out.startswith("::error file=a.xyz,line=1,col=1,endLine=1,endColumn=1,")
    assert out.count("\n") == 1


@pytest.mark.parametrize(
    ("severity", "fail_on", "expected"),
    [
        ("error", "error", 1),
        ("error", "never", 0),
        ("warning", "error", 0),
        ("warning", "warning", 1),
        ("warning", "info", 1),
        ("info", "warning", 0),
        ("info", "info", 1),
        ("info", "never", 0),
    ],
)
def test_fail_on(
    project: Path, capsys: pytest.CaptureFixture[str], severity: str, fail_on: str, expected: int
) -> None:
    (project / "nnprobe.toml").write_text(f'severity = {{ NP901 = "{severity}" }}\n')
    code, out, _ = run(capsys, "inspect", "--fail-on", fail_on, "a.xyz")
    assert code == expected
    assert f"NP901 [{severity}]" in out


def test_missing_path_still_reports_the_rest(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "inspect", "a.xyz", "nope.py", "--fail-on", "never")
    assert code == 2
    assert "a.xyz:1:1: NP901" in out
    assert err == "nnprobe: error: path does not exist: nope.py\n"


def test_unknown_config_key(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "nnprobe.toml").write_text("selekt = ['NP901']\n")
    code, out, err = run(capsys, "inspect", "a.xyz")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "'selekt'" in err and err.startswith("nnprobe: error: ")


def test_explicit_config_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "other.toml").write_text("ignore = ['load-failed']\n")
    code, out, _ = run(capsys, "inspect", "--config", "other.toml", "a.xyz")
    assert code == 0
    assert out == "No problems found in 1 file.\n"
    code, _, err = run(capsys, "inspect", "--config", "absent.toml", "a.xyz")
    assert code == 2
    assert "absent.toml" in err


@pytest.mark.parametrize(
    ("flags", "expected_codes"),
    [
        (["--ignore", "NP901"], []),
        (["--ignore", "NP906,load-failed"], []),
        (["--ignore", "NP9"], []),
        (["--select", "NP906"], []),
        (["--select", "NP906", "--extend-select", "NP901"], ["NP901"]),
        (["--select", "NP906", "--select", "NP901"], ["NP901"]),
        (["--select", "ALL"], ["NP901"]),
    ],
)
def test_select_and_ignore(
    project: Path, capsys: pytest.CaptureFixture[str], flags: list[str], expected_codes: list[str]
) -> None:
    code, out, _ = run(capsys, "inspect", "--output-format", "json", *flags, "a.xyz")
    assert [f["code"] for f in json.loads(out)["findings"]] == expected_codes
    assert code == (1 if expected_codes else 0)


def test_unknown_selector_is_a_usage_error(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "inspect", "--ignore", "NP901,no-such-rule", "a.xyz")
    assert code == 2
    assert out == ""
    assert err == "nnprobe: error: --ignore: unknown rule code or name 'no-such-rule'\n"


def test_statistics(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--statistics", "a.xyz", "b.xyz")
    assert code == 1
    assert out.splitlines()[0] == "2\tNP901\t    load-failed"
    assert out.endswith("\n\n2 errors in 2 files\n")
    code, _, err = run(capsys, "inspect", "--statistics", "--output-format", "json", "a.xyz")
    assert code == 2
    assert "--statistics" in err


def test_quiet(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inspect", "--quiet", "a.xyz")
    assert code == 1
    assert out == "a.xyz:1:1: NP901 [error] nnprobe cannot inspect '.xyz' files\n"
    code, out, _ = run(capsys, "inspect", "--quiet", "--ignore", "NP901", "a.xyz")
    assert (code, out) == (0, "")


def test_output_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "inspect", "--output-format", "json", "--output", "r.json", "a.xyz"
    )
    assert (code, out, err) == (1, "", "")
    data = json.loads((project / "r.json").read_text(encoding="utf-8"))
    assert data["findings"][0]["path"] == "a.xyz"
    code, _, err = run(capsys, "inspect", "--output", "no/such/dir/r.txt", "a.xyz")
    assert code == 2
    assert err.startswith("nnprobe: error: cannot write no/such/dir/r.txt")


def test_colour_never_when_not_a_tty_or_disabled(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    _, out, _ = run(capsys, "inspect", "a.xyz")
    assert "\x1b[" in out
    _, out, _ = run(capsys, "inspect", "--no-color", "a.xyz")
    assert "\x1b[" not in out
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = run(capsys, "inspect", "a.xyz")
    assert "\x1b[" not in out


def test_internal_error_is_one_line(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setattr("nnprobe.cli.inspect_paths", boom)
    code, out, err = run(capsys, "inspect", "a.xyz")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "RuntimeError: kaput" in err and "Traceback" not in err
    monkeypatch.setenv("NNPROBE_DEBUG", "1")
    code, _, err = run(capsys, "inspect", "a.xyz")
    assert code == 2
    assert "Traceback" in err


def test_usage_errors(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "inspect")[0] == 2
    assert run(capsys, "inspect", "--output-format", "xml", "a.xyz")[0] == 2
    assert run(capsys, "frobnicate")[0] == 2
    assert run(capsys)[0] == 2


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"nnprobe {__version__}\n", "")


def test_rules_lists_every_rule(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "rules")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["code", "name", "evidence", "severity", "fix", "default"]
    assert len(rows) == 1 + len(all_rules())
    assert any(row.split()[:4] == ["NP901", "load-failed", "inspection", "error"] for row in rows)

    code, out, _ = run(capsys, "rules", "--output-format", "json")
    assert code == 0
    listed = json.loads(out)
    assert [r["code"] for r in listed] == [r.code for r in all_rules()]
    np901 = next(r for r in listed if r["code"] == "NP901")
    assert np901["name"] == "load-failed"
    assert np901["fixable"] is False
    assert np901["severity"] == "error"


def test_rule_page(capsys: pytest.CaptureFixture[str]) -> None:
    rule = get_rule("NP901")
    assert rule is not None
    assert run(capsys, "rule", "NP901") == (0, render_rule_page(rule), "")
    assert run(capsys, "rule", "load-failed")[1] == render_rule_page(rule)
    code, out, err = run(capsys, "rule", "NP999")
    assert (code, out) == (2, "")
    assert err == "nnprobe: error: unknown rule code or name 'NP999' (see `nnprobe rules`)\n"
