"""Rule documentation: every rule has every heading, a unique kebab-case name, and an up-to-date
generated page under docs/rules/."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from nnprobe.core.docs import expected_pages, render_rule_page
from nnprobe.core.finding import Confidence, Evidence, Severity
from nnprobe.core.registry import all_rules
from nnprobe.core.rule import DOC_HEADINGS, Option, Rule

ROOT = Path(__file__).resolve().parent.parent
RULES = all_rules()


def _gen_docs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_rule_has_every_heading(rule: type[Rule]) -> None:
    assert rule.missing_headings() == [], f"{rule.code} docstring lacks these ## headings"


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_page_has_headings_in_order(rule: type[Rule]) -> None:
    page = render_rule_page(rule)
    assert page.startswith(f"# {rule.code}: {rule.name}\n")
    headings = [line[3:] for line in page.splitlines() if line.startswith("## ")]
    assert headings[: len(DOC_HEADINGS)] == list(DOC_HEADINGS)


def test_names_are_kebab_case_and_unique() -> None:
    names = [rule.name for rule in RULES]
    bad = [n for n in names if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", n)]
    assert bad == []
    assert len(set(names)) == len(names)
    assert len({rule.code for rule in RULES}) == len(RULES)


def test_generated_pages_are_current() -> None:
    problems = _gen_docs().differences(ROOT / "docs" / "rules")
    assert problems == [], "run `python scripts/gen_docs.py`:\n" + "\n".join(problems)


def test_check_reports_stale_missing_and_extra(tmp_path: Path) -> None:
    gen_docs = _gen_docs()
    assert gen_docs.main(["--dir", str(tmp_path)]) == 0
    assert gen_docs.main(["--check", "--dir", str(tmp_path)]) == 0
    first = sorted(p for p in expected_pages() if p != "README.md")[0]
    (tmp_path / first).write_text("edited by hand\n", encoding="utf-8")
    (tmp_path / "README.md").unlink()
    (tmp_path / "NP000.md").write_text("old\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("not generated\n", encoding="utf-8")
    assert gen_docs.differences(tmp_path) == [
        f"stale: {tmp_path / first}",
        f"missing: {tmp_path / 'README.md'}",
        f"extra: {tmp_path / 'NP000.md'} (no registered rule has this code)",
    ]
    assert gen_docs.main(["--check", "--dir", str(tmp_path)]) == 1
    gen_docs.main(["--dir", str(tmp_path)])
    assert gen_docs.differences(tmp_path) == []
    assert (tmp_path / "notes.md").is_file()


class _Documented(Rule):
    """
    ## What it does
    Flags a thing.

    More detail.

    ## Why is this bad?
    Because.

    ## Example
    ```python
    x = 1
    ```

    ## How to fix
    Do not.

    ## Options
    Thresholds:

    ## References
    - Somewhere
    """

    code = "NP999"
    name = "documented-thing"
    message = "m"
    severity = Severity.WARNING
    confidence = Confidence.MEDIUM
    evidence = Evidence.SOURCE
    fixable = True
    enabled_by_default = False
    options = {
        "max-rate": Option(0.5, "largest rate | allowed"),
        "names": Option(["a"], "names"),
        "strict": Option(False, "be strict"),
    }


def test_page_layout() -> None:
    page = render_rule_page(_Documented)
    assert page == (
        "# NP999: documented-thing\n"
        "\n"
        "**Default severity:** warning · **Confidence:** medium · **Evidence:** source · "
        "**Fix:** available · **Enabled by default:** no · **Since:** 0.1.0\n"
        "\n## What it does\n\nFlags a thing.\n\nMore detail.\n"
        "\n## Why is this bad?\n\nBecause.\n"
        "\n## Example\n\n```python\nx = 1\n```\n"
        "\n## How to fix\n\nDo not.\n"
        "\n## Options\n\nThresholds:\n\n"
        "| key | default | description |\n"
        "|---|---|---|\n"
        "| `max-rate` | `0.5` | largest rate \\| allowed |\n"
        '| `names` | `["a"]` | names |\n'
        "| `strict` | `false` | be strict |\n"
        "\n```toml\n[tool.nnprobe.rules.NP999]\nmax-rate = 0.5\n```\n"
        "\n## References\n\n- Somewhere\n"
    )
