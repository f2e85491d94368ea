"""Property-based fuzzing of the static analyzer, the config parser and suppression comments.

A language server sees every half-typed buffer, so whatever the text, analysing it must return
findings: never raise, and never isolate a rule as NP907 (that finding is the engine's safety net,
and the fuzzer treating it as a pass would hide the rule bug behind it). Config mistakes must be a
ConfigError with a message. Inputs come from tests/robustness/static_fuzz.py.

CI runs the "ci" profile: a fixed, derandomized budget. `NNPROBE_FUZZ_EXAMPLES=N` scales it (a
test of share 1 runs N examples) with a random seed; bench/fuzz_static.py runs a large budget and
prints the figures. `pytest -s` prints the summary line of what ran.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import static_fuzz as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnprobe.core.config import ConfigError, describe_keys, parse_config
from nnprobe.core.finding import Range
from nnprobe.core.registry import all_rules, get_rule
from nnprobe.core.suppressions import parse_suppressions
from nnprobe.inspectors.script.handler import check_text

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile("nnprobe-ci", derandomize=True, max_examples=100, **_COMMON)
_EXTRA = int(os.environ.get("NNPROBE_FUZZ_EXAMPLES", "0") or 0)
settings.register_profile("nnprobe-more", max_examples=max(_EXTRA, 1), **_COMMON)
PROFILE = "nnprobe-more" if _EXTRA else "nnprobe-ci"

CONFIG = sf.fuzz_config()
SEEDS = sf.seed_sources()
TALLY = sf.Tally()


def budget(share: float) -> Any:
    """This test's share of the profile's examples (the CI budget is fixed per test)."""
    base = settings.get_profile(PROFILE)
    return settings(base, max_examples=max(1, int(base.max_examples * share)))


@pytest.fixture(scope="module", autouse=True)
def counted() -> Iterator[None]:
    with sf.counting_rules(TALLY):
        yield
    print("\n" + TALLY.summary())


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def assert_answered(findings: list[Any]) -> None:
    isolated = [f.message for f in findings if f.code == "NP907"]
    assert not isolated, isolated


@budget(2.0)
@given(sf.generated_scripts())
def test_generated_scripts(source: str) -> None:
    assert_answered(sf.check_source(TALLY, "generated", source, CONFIG))


@budget(2.0)
@given(sf.python_text())
def test_python_text(source: str) -> None:
    assert_answered(sf.check_source(TALLY, "python-text", source, CONFIG))


@budget(4.0)
@given(st.sampled_from(SEEDS).flatmap(sf.typed_edits))
def test_fixtures_edited_as_if_typed(source: str) -> None:
    assert_answered(sf.check_source(TALLY, "mutated-fixture", source, CONFIG))


@budget(1.0)
@given(sf.generated_scripts().flatmap(sf.typed_edits))
def test_generated_scripts_edited(source: str) -> None:
    assert_answered(sf.check_source(TALLY, "mutated-generated", source, CONFIG))


@budget(2.0)
@given(st.sampled_from(SEEDS).flatmap(sf.mutated_bytes))
def test_damaged_bytes_on_disk(folder: Path, data: bytes) -> None:
    assert_answered(sf.check_file(TALLY, "mutated-bytes", data, CONFIG, folder))


@pytest.mark.parametrize("path", sorted(sf.REGRESSIONS.glob("*.py")), ids=lambda p: p.stem)
def test_shrunk_inputs_the_fuzzer_found(path: Path) -> None:
    """Inputs that once made a rule crash, kept as the fuzzer shrank them."""
    assert_answered(sf.check_source(TALLY, "regression", path.read_text("utf-8"), CONFIG))


# ----------------------------------------------------------------------------- config

RULES = all_rules()
SELECTORS = sf.SELECTORS


@budget(2.0)
@given(sf.config_tables())
def test_config_tables_of_random_types(table: dict[str, Any]) -> None:
    """Any table is a Config or a ConfigError with a message; an accepted one runs every rule."""
    config = sf.check_config_table(TALLY, table)
    if config is not None and set(table) <= set(describe_keys()):
        config.select = CONFIG.select
        for source in SEEDS[:2]:
            assert_answered(check_text(source, "fuzz.py", config, "fuzz.py"))


@pytest.mark.parametrize(
    "table",
    [
        {"input-shape": "3x\u00b2"},
        {"input-shape": "3x" + "9" * 5000},
        {"rules": {"NP101": {"sgd-max": 10**400}}},
    ],
    ids=["superscript-digit", "digits-past-int-limit", "int-past-float-range"],
)
def test_config_tables_the_fuzzer_found(table: dict[str, Any]) -> None:
    """Once a ValueError or OverflowError traceback; now a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=r"input-shape|sgd-max"):
        parse_config(table)


@budget(2.0)
@given(sf.typed_edits(sf.CONFIG_TEXT))
def test_config_files_edited_as_if_typed(folder: Path, text: str) -> None:
    sf.check_config_file(TALLY, text, folder)


# ----------------------------------------------------------------------------- suppressions

COMMENTS = st.one_of(
    st.builds(
        "# nnprobe: ignore{}[{}]".format,
        st.sampled_from(["", "-file", "-FILE", "_file"]),
        st.lists(st.sampled_from(SELECTORS) | st.text(max_size=5), max_size=3).map(", ".join),
    ),
    st.builds("# noqa: {}".format, st.text(max_size=12)),
    st.sampled_from(
        ["# nnprobe: ignore", "# nnprobe:ignore[", "#noqa", "# NNPROBE: IGNORE[np101]"]
    ),
    st.text(max_size=20).map("# {}".format),
)


@budget(2.0)
@given(st.lists(COMMENTS, min_size=1, max_size=6))
def test_suppression_comments(comments: list[str]) -> None:
    """Any comment parses; `# nnprobe: ignore[..., NP101]` on a line silences NP101 there."""
    TALLY.inputs["suppressions"] += 1
    text = "import torch\n" + "".join(f"lr = 0.5  {comment}\n" for comment in comments)
    parsed = parse_suppressions(text)
    rule = get_rule("NP101")
    assert rule is not None
    for number, comment in enumerate(comments, start=2):
        listed = comment.removeprefix("# nnprobe: ignore[").rstrip("]")
        if comment.startswith("# nnprobe: ignore[") and "NP101" in listed.split(", "):
            finding = rule().finding("t.py", Range.of(number, 1, number, 2), message="lr")
            assert parsed.suppresses(finding)
    assert_answered(check_text(text, "fuzz.py", CONFIG, "fuzz.py"))


pytestmark = pytest.mark.filterwarnings("ignore::SyntaxWarning")


def test_the_large_budget_bench_runs_and_prints_its_figures() -> None:
    """bench/fuzz_static.py is not a test, but it must keep running; a tiny budget here."""
    bench = sf.ROOT / "bench" / "fuzz_static.py"
    run = subprocess.run(
        [sys.executable, str(bench), "--examples", "60"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    summary = re.search(r"static fuzz: (\d+) inputs .* exceptions escaped (\d+)", run.stdout)
    assert summary and int(summary.group(1)) >= 60 and summary.group(2) == "0", run.stdout
