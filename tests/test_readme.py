"""The README is the first thing a newcomer runs: its commands, flags and config must be real."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from nnprobe.core.config import parse_config
from nnprobe.core.registry import get_rule

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_exactly_two_setup_commands_and_they_are_make_targets() -> None:
    setup = re.findall(r"^```bash\n(.*?)^```", section("Set-up"), re.S | re.M)
    assert len(setup) == 1
    commands = [line.split("#")[0].strip() for line in setup[0].splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no '{target}' target"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert re.search(r"^exec make test$", ci, re.M)


def test_inspect_flags_in_the_readme_exist() -> None:
    if importlib.util.find_spec("nnprobe.cli") is None:
        pytest.skip("the nnprobe CLI is not there yet")
    from nnprobe.cli import build_parser

    parser = build_parser()
    inspect = parser._subparsers._group_actions[0].choices["inspect"]  # type: ignore[union-attr]
    known = {flag for action in inspect._actions for flag in action.option_strings}
    used: set[str] = set()
    for line in README.splitlines():
        command = line.split("nnprobe inspect", 1)
        if len(command) == 2:
            used |= {w for w in shlex.split(command[1], comments=True) if w.startswith("--")}
    assert {"--output-format", "--output", "--select", "--fail-on"} <= used
    assert used <= known, f"README uses flags the CLI does not have: {sorted(used - known)}"


def test_readme_config_is_accepted_by_the_config_loader() -> None:
    (toml,) = blocks("toml")
    data = tomllib.loads(toml)["tool"]["nnprobe"]
    names = {*data.get("ignore", []), *data.get("severity", {}), *data.get("rules", {})}
    names |= {c for codes in data.get("per-file-ignores", {}).values() for c in codes}
    missing = sorted(n for n in names if get_rule(n) is None)
    if missing:
        pytest.skip(f"rules named in the README example are not registered yet: {missing}")
    config = parse_config(data, root=ROOT)
    assert "NP103" not in config.enabled_codes()
    assert config.severity["NP108"].value == "error"


def test_speed_section_has_the_benchmark_marker() -> None:
    assert "<!-- bench:static -->" in section("Speed")
