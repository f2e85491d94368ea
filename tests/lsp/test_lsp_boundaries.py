"""The process boundaries ARCHITECTURE.md promises: the server never loads torch, numpy or onnx,
and the core, the inspectors and the CLI never load pygls or the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE = ("core", "inspectors", "report")


def loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys\nprint('LOADED', *(m for m in {modules!r} if m in sys.modules))\n"
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    (last,) = [line for line in run.stdout.splitlines() if line.startswith("LOADED")][-1:]
    return last.split()[1:]


def test_the_server_never_loads_torch() -> None:
    code = (
        "from nnprobe.server.app import create_server\n"
        "import nnprobe.server.main\n"
        "create_server()\n"
    )
    assert loaded_after(code, ("torch", "numpy", "onnx", "onnxruntime", "safetensors")) == []


def test_the_lint_process_loads_neither_torch_nor_pygls() -> None:
    code = (
        "from nnprobe.core.config import Config\n"
        "from nnprobe.server import lint_process\n"
        "lint_process.warm()\n"
        "text = open('tests/fixtures/static/np104_softmax_before_cross_entropy.py').read()\n"
        "assert lint_process.findings(text, None, 'np104.py', Config.default())\n"
    )
    heavy = ("torch", "numpy", "onnx", "onnxruntime", "safetensors", "pygls", "lsprotocol")
    assert loaded_after(code, heavy) == []


def test_the_core_and_the_cli_never_load_the_server() -> None:
    code = (
        "from nnprobe.cli import main\n"
        "main(['inspect', '--fail-on', 'never', '--quiet', 'tests/fixtures/static'])\n"
    )
    assert loaded_after(code, ("pygls", "lsprotocol", "nnprobe.server")) == []


def test_pure_packages_do_not_import_the_server_or_pygls() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for package in PURE
        for path in sorted((ROOT / "src" / "nnprobe" / package).rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.lstrip().startswith(("import ", "from "))
        and any(name in line for name in ("pygls", "lsprotocol", "nnprobe.server"))
    ]
    assert offenders == []


def test_start_up_loads_the_server_with_the_collector_paused_then_restores_it() -> None:
    """server/main.py: importing it loads nothing of pygls (the start-up code does that with the
    garbage collector off), and start-up hands back an enabled collector with what it loaded
    frozen out of later collections."""
    code = (
        "import gc\n"
        "import nnprobe.server.main as main\n"
        "print('BEFORE', 'lsprotocol' in sys.modules, 'pygls' in sys.modules)\n"
        "server = main._load_server()\n"
        "print('AFTER', gc.isenabled(), gc.get_freeze_count() > 10000)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", "import sys\n" + code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert lines["BEFORE"] == "False False"
    assert lines["AFTER"] == "True True"
