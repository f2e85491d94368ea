"""Settings from pyproject.toml / nnprobe.toml: what users write, and the errors they get."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnprobe.core.config import Config, ConfigError, find_config, load_config, parse_config
from nnprobe.core.finding import Severity
from nnprobe.core.registry import expand


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_select_every_default_rule_but_not_the_opt_in_ones() -> None:
    config = Config.default()
    assert "NP101" in config.enabled_codes()
    assert "NP906" in config.enabled_codes()
    from nnprobe.core.registry import all_rules

    off = {r.code for r in all_rules() if not r.enabled_by_default}
    assert not (off & config.enabled_codes())


def test_pyproject_table_is_found_from_a_subdirectory(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.nnprobe]\nignore = ["NP907"]\n')
    sub = tmp_path / "src" / "deep"
    sub.mkdir(parents=True)
    assert find_config(sub) == tmp_path / "pyproject.toml"
    config = load_config(start=sub)
    assert "NP907" not in config.enabled_codes()
    assert config.root == tmp_path.resolve()


def test_pyproject_without_our_table_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.nnprobe]\nignore = ["NP906"]\n')
    write(tmp_path / "pkg" / "pyproject.toml", '[project]\nname = "x"\n')
    assert find_config(tmp_path / "pkg") == tmp_path / "pyproject.toml"


def test_nnprobe_toml_takes_top_level_keys_and_wins(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.nnprobe]\nignore = ["NP906"]\n')
    write(tmp_path / "nnprobe.toml", 'ignore = ["NP907"]\n')
    config = load_config(start=tmp_path)
    assert config.source == tmp_path / "nnprobe.toml"
    assert "NP906" in config.enabled_codes() and "NP907" not in config.enabled_codes()


def test_select_ignore_accept_codes_prefixes_and_names() -> None:
    config = parse_config({"select": ["NP9"], "ignore": ["internal-error"]})
    assert config.enabled_codes() == {c for c in config.select if c.startswith("NP9")} - {"NP907"}
    assert {"NP901", "NP906"} <= config.enabled_codes()
    assert "NP101" not in config.enabled_codes()


def test_extend_select_adds_opt_in_rules() -> None:
    from nnprobe.core.registry import all_rules

    off = [r.code for r in all_rules() if not r.enabled_by_default]
    if not off:
        pytest.skip("no opt-in rule registered")
    config = parse_config({"extend-select": off})
    assert set(off) <= config.enabled_codes()


def test_severity_overrides_by_code_or_name() -> None:
    config = parse_config({"severity": {"NP906": "warning", "internal-error": "info"}})
    assert config.severity_for("NP906", Severity.ERROR) is Severity.WARNING
    assert config.severity_for("NP907", Severity.ERROR) is Severity.INFO


def test_per_file_ignores_and_exclude_match_globs(tmp_path: Path) -> None:
    config = parse_config(
        {"per-file-ignores": {"tests/*": ["NP906"]}, "exclude": ["legacy", "gen_*.py"]},
        root=tmp_path,
    )
    assert "NP906" not in config.enabled_codes(tmp_path / "tests" / "test_x.py")
    assert "NP906" in config.enabled_codes(tmp_path / "train.py")
    assert config.is_excluded(tmp_path / "legacy" / "old.py")
    assert config.is_excluded(tmp_path / "a" / "gen_model.py")
    assert not config.is_excluded(tmp_path / "train.py")


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        ({"selec": ["NP1"]}, "'tool.nnprobe.selec'"),
        ({"select": ["NP999"]}, "NP999"),
        ({"select": "NP1"}, "tool.nnprobe.select must be a list"),
        ({"ignore": ["not-a-rule"]}, "not-a-rule"),
        ({"severity": {"NP906": "fatal"}}, "tool.nnprobe.severity.NP906"),
        ({"severity": {"NP998": "error"}}, "tool.nnprobe.severity.NP998"),
        ({"rules": {"NP998": {}}}, "tool.nnprobe.rules.NP998"),
        ({"rules": {"NP906": {"max": 1}}}, "'tool.nnprobe.rules.NP906.max'"),
        ({"exclude": "build"}, "tool.nnprobe.exclude"),
        ({"per-file-ignores": {"t/*": ["NP000"]}}, "per-file-ignores.t/*"),
    ],
)
def test_mistakes_name_the_key(table: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(table)
    assert needle in str(info.value)


def test_rule_thresholds_are_validated_by_type() -> None:
    from nnprobe.core.registry import all_rules

    rule = next((r for r in all_rules() if r.options), None)
    if rule is None:
        pytest.skip("no rule with options registered")
    key, option = next(iter(rule.options.items()))
    ok = parse_config({"rules": {rule.code: {key: option.default}}})
    assert rule(ok.rules[rule.code]).opt(key) == option.default
    with pytest.raises(ConfigError, match=key):
        parse_config({"rules": {rule.code: {key: "not-a-number"}}})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "nnprobe.toml", "select = [\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_command_line_overrides_replace_select_and_add_ignores() -> None:
    base = parse_config({"ignore": ["NP907"]})
    config = base.with_overrides(select=["NP9"], ignore=["NP901"])
    assert config.enabled_codes() == expand(["NP9"]) - {"NP901", "NP907"}
    assert "NP906" in config.enabled_codes()
    with pytest.raises(ConfigError, match="NP555"):
        base.with_overrides(select=["NP555"])
