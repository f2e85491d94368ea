"""`.pre-commit-hooks.yaml` is what pre-commit reads when a user adds nnprobe to their config:
it must parse, name a command the package installs, and that command must behave as a hook
(exit 0 on clean files, 1 when a staged file has an error)."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from nnprobe.core.registry import get_rule

ROOT = Path(__file__).resolve().parents[1]
HOOKS_FILE = ROOT / ".pre-commit-hooks.yaml"


@pytest.fixture(scope="module")
def hook() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed")
    hooks = yaml.safe_load(HOOKS_FILE.read_text(encoding="utf-8"))
    assert isinstance(hooks, list)
    by_id = {h["id"]: h for h in hooks}
    assert "nnprobe" in by_id
    return by_id["nnprobe"]


def test_hook_definition(hook: dict[str, Any]) -> None:
    assert hook["language"] == "python"
    assert hook["types"] == ["python"]
    assert hook["args"] == ["--select", "NP1"]
    assert hook["name"] and hook["description"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    executable, subcommand = shlex.split(hook["entry"])
    assert executable in scripts, "the hook's entry must be a console script the package installs"
    assert subcommand == "inspect"


def run_hook(hook: dict[str, Any], *files: Path) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec("nnprobe.cli") is None:
        pytest.skip("the nnprobe CLI is not there yet")
    # pre-commit runs `entry + args + staged filenames`; the console script is `python -m nnprobe`.
    _, *entry_args = shlex.split(hook["entry"])
    command = [sys.executable, "-m", "nnprobe", *entry_args, *hook["args"], *map(str, files)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_hook_passes_clean_files(hook: dict[str, Any]) -> None:
    result = run_hook(hook, ROOT / "examples" / "clean_digits_mlp.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hook_blocks_a_commit_with_an_error(hook: dict[str, Any]) -> None:
    if get_rule("NP104") is None:
        pytest.skip("NP104 is not registered yet")
    clean = ROOT / "examples" / "clean_digits_mlp.py"
    broken = ROOT / "examples" / "cnn_softmax_cross_entropy.py"
    result = run_hook(hook, clean, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "NP104" in result.stdout
    assert "clean_digits_mlp.py" not in result.stdout
