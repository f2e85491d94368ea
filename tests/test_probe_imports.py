"""The static front doors never pay for the probe engine: importing the CLI and the inspectors
(which registers every rule, NP3xx included) must not import torch, onnx, onnxruntime or numpy."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "onnx", "onnxruntime", "numpy")


def test_cli_and_inspectors_import_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import nnprobe.cli, nnprobe.inspectors, nnprobe.probe\n"
        "from nnprobe.core.registry import all_rules\n"
        "codes = [r.code for r in all_rules()]\n"
        f"print(json.dumps([[m for m in {HEAVY!r} if m in sys.modules], codes]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded, codes = json.loads(out)
    assert loaded == []
    assert {"NP301", "NP305", "NP308"} <= set(codes)
