"""Each example says in its docstring which nnprobe codes it shows; nnprobe must find exactly those.

This keeps the demo honest both ways: a rule that misses its example's lesson fails here, and so
does a rule that cries wolf on an example (the clean one declares none). Codes whose rule is not
registered yet are left out of the comparison; every registered rule is held to it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from nnprobe.core.config import Config
from nnprobe.core.engine import handled_suffixes, inspect_target
from nnprobe.core.files import Target
from nnprobe.core.registry import all_rules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
PARAGRAPH = r"{}:(.*?)(?:\n\s*\n|\Z)"


def declared(script: Path, heading: str) -> set[str] | None:
    """Codes named in the docstring paragraph that starts with `heading:`, not counting the ones
    in parentheses (explanations); None when there is no such paragraph."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    match = re.search(PARAGRAPH.format(re.escape(heading)), docstring, re.S)
    if match is None:
        return None
    text = re.sub(r"\([^)]*\)", "", match.group(1))
    codes = set(re.findall(r"\bNP\d{3}\b", text))
    assert codes or text.strip().startswith("none"), f"{script.name}: {match.group(0)!r}"
    return codes


def expected_codes(script: Path) -> set[str]:
    codes = declared(script, "Expected nnprobe findings")
    assert codes is not None, f"{script.name}: docstring lacks 'Expected nnprobe findings: ...'"
    return codes


def test_declarations_are_read() -> None:
    expected = {script.name: expected_codes(script) for script in EXAMPLES}
    assert expected["clean_digits_mlp.py"] == set()
    assert expected["softmax_regression_digits.py"] == {"NP111"}
    assert expected["deep_sigmoid_mlp.py"] == {"NP108", "NP117"}
    silent = declared(ROOT / "examples" / "softmax_regression_digits.py", "Must stay silent")
    assert silent == {"NP112"}


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_findings_match_its_docstring(script: Path) -> None:
    if ".py" not in handled_suffixes():
        pytest.skip("no inspector for .py files is registered")
    registered = {rule.code for rule in all_rules()}
    result = inspect_target(Target(script, script.name, explicit=True), Config.default(ROOT))
    assert result.analysed
    found = {finding.code for finding in result.findings}
    expected = expected_codes(script) & registered
    assert not expected & (declared(script, "Must stay silent") or set())
    details = "\n".join(
        f"  {f.code} line {f.range.start.line}: {f.message}" for f in result.findings
    )
    assert found == expected, f"{script.name}: expected {sorted(expected)}, got:\n{details}"
