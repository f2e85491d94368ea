"""Every static-rule fixture, checked against the expectations written inline in it.

Fixture grammar (flake8-bugbear / pylint style): a line that must produce findings ends with
`# error: [NP104]`, `# warning: [NP101, NP103]` or `# info: [NP103]` (several may follow each
other); `# ok` marks a line that must stay silent, and every unmarked line must stay silent too.

- tests/fixtures/static/npNNN_*.py are checked with only rule NPNNN selected;
- tests/fixtures/static/scripts/*.py (realistic full scripts) with every default rule;
- tests/fixtures/static/clean/*.py (idiomatic scripts) with every default rule, and must produce
  no error or warning at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nnprobe.core.config import Config
from nnprobe.core.finding import Severity
from nnprobe.inspectors.script.handler import check_text

FIXTURES = Path(__file__).parent / "fixtures" / "static"
_EXPECT = re.compile(r"(error|warning|info):\s*\[([^\]]*)\]")


def expectations(text: str) -> set[tuple[int, str, str]]:
    expected = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if "#" not in line:
            continue
        comment = line[line.index("#") :]
        for severity, codes in _EXPECT.findall(comment):
            for code in re.split(r"[\s,]+", codes.strip()):
                if code:
                    expected.add((number, code, severity))
    return expected


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(FIXTURES).as_posix() for p in paths]


RULE_FIXTURES = sorted(FIXTURES.glob("np[0-9][0-9][0-9]_*.py"))
SCRIPT_FIXTURES = sorted((FIXTURES / "scripts").glob("*.py"))
CLEAN_FIXTURES = sorted((FIXTURES / "clean").glob("*.py"))


def _check(path: Path, config: Config) -> set[tuple[int, str, str]]:
    text = path.read_text(encoding="utf-8")
    findings = check_text(text, path.name, config, path)
    return {(f.range.start.line, f.code, f.severity.value) for f in findings}


def _diff(actual: set[tuple[int, str, str]], expected: set[tuple[int, str, str]]) -> str:
    missing = sorted(expected - actual)
    unexpected = sorted(actual - expected)
    return f"missing (line, code, severity): {missing}\nunexpected: {unexpected}"


@pytest.mark.parametrize("path", RULE_FIXTURES, ids=_ids(RULE_FIXTURES))
def test_rule_fixture(path: Path) -> None:
    code = path.name[:5].upper()
    config = Config.default(root=FIXTURES).with_overrides(select=[code])
    text = path.read_text(encoding="utf-8")
    expected = {e for e in expectations(text) if e[1] == code}
    assert expected, f"{path.name} has no positive case for {code}"
    assert "# ok" in text, f"{path.name} has no negative case marked '# ok'"
    actual = _check(path, config)
    assert actual == expected, _diff(actual, expected)


@pytest.mark.parametrize("path", SCRIPT_FIXTURES, ids=_ids(SCRIPT_FIXTURES))
def test_script_fixture(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    actual = _check(path, Config.default(root=FIXTURES))
    expected = expectations(text)
    assert actual == expected, _diff(actual, expected)


@pytest.mark.parametrize("path", CLEAN_FIXTURES, ids=_ids(CLEAN_FIXTURES))
def test_clean_script_has_no_warnings(path: Path) -> None:
    findings = check_text(path.read_text(encoding="utf-8"), path.name, Config.default(), path)
    loud = [f for f in findings if f.severity is not Severity.INFO]
    assert not loud, [(f.range.start.line, f.code, f.message) for f in loud]
    expected = expectations(path.read_text(encoding="utf-8"))
    actual = {(f.range.start.line, f.code, f.severity.value) for f in findings}
    assert actual == expected, _diff(actual, expected)


def test_every_static_rule_has_a_fixture() -> None:
    from nnprobe.core.finding import Evidence
    from nnprobe.core.registry import all_rules

    codes = {r.code for r in all_rules() if r.evidence is Evidence.SOURCE}
    covered = {p.name[:5].upper() for p in RULE_FIXTURES}
    assert codes <= covered, f"rules without a fixture: {sorted(codes - covered)}"
