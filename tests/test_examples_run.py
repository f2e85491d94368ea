"""The bundled examples are real training scripts: each one runs, trains and reports its loss.

They are what `make demo` inspects, so a broken example would make the demo lie. Each script runs
in its own subprocess with `--epochs 1`, all of them at once, with one torch thread each.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
TIMEOUT_S = 180
# Every example prints one line per epoch: "epoch 1/1  ...  train loss 0.1234 ...".
EPOCH_LINE = re.compile(r"^epoch 1/1\b.*\bloss (?:nan|inf|-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)\b", re.M)

MISSING = [name for name in ("torch", "sklearn") if importlib.util.find_spec(name) is None]


def test_examples_are_there() -> None:
    assert len(EXAMPLES) >= 6, f"expected the bundled examples in {EXAMPLES_DIR}"


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_has_the_expected_shape(script: Path) -> None:
    tree = ast.parse(script.read_text(encoding="utf-8"))
    docstring = ast.get_docstring(tree)
    assert docstring and "Expected nnprobe findings:" in docstring
    guards = [
        node
        for node in tree.body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
    ]
    assert guards, "training must only start under `if __name__ == '__main__':`"
    options = {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_argument"
        and node.args
        and isinstance(node.args[0], ast.Constant)
    }
    assert "--epochs" in options


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess[str]]:
    if MISSING:
        pytest.skip(f"the examples need {' and '.join(MISSING)} (pip install -e '.[dev]')")
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    procs = {
        script.name: subprocess.Popen(
            [sys.executable, str(script), "--epochs", "1"],
            cwd=EXAMPLES_DIR.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for script in EXAMPLES
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err += f"\n(killed after {TIMEOUT_S} s)"
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_trains_one_epoch(
    script: Path, runs: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    run = runs[script.name]
    assert run.returncode == 0, f"{script.name} failed:\n{run.stdout}\n{run.stderr}"
    assert EPOCH_LINE.search(run.stdout), f"no 'epoch 1/1 ... loss N' line in:\n{run.stdout}"
