"""Workspace files named like the modules nnprobe imports: a checkout holding `numpy.py`, `json.py`
or an `nnprobe/` package beside its models. Any process that starts with the checkout on its
import path imports these instead of the real ones, whatever the trust.

Each planted module is a stealthy payload: on import it creates its sentinel, then puts the real
module in its place and returns it, so the run goes on and reports "No problems found" as a real
attack would; that also lets one workspace hold every name and a test see all that ran at once.

Run these through the entry points the way users start them: the `nnprobe` command (or
`python -P -m nnprobe`). `python -m nnprobe` in the folder itself is not safe and cannot be made
safe (Python imports `nnprobe` and what runpy needs from the working directory before any code of
ours runs); the README says so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from corpus import Hostile, fake_state_dict
from onnx import TensorProto, helper

# Third-party modules of the probe, the server and the pickle scan, then the standard-library
# modules they import that a fresh interpreter has not imported yet (so a file of that name in
# the folder would be found first); packages are planted as folders.
THIRD_PARTY = ["numpy", "torch", "onnx", "onnxruntime", "safetensors", "picklescan"]
SERVER = ["pygls", "lsprotocol"]
STDLIB = ["json", "zipfile", "struct", "pickle", "tempfile", "ast", "contextlib", "warnings",
          "typing", "dataclasses", "subprocess", "multiprocessing", "asyncio", "logging",
          "importlib"]  # fmt: skip
PACKAGES = {"nnprobe", "pygls", "lsprotocol", "json", "multiprocessing", "asyncio", "logging",
            "importlib"}  # fmt: skip
SHADOWED = [*THIRD_PARTY, *SERVER, "nnprobe", *STDLIB]

# On import: the sentinel, then the real module found without this folder, installed under the
# same name (the import statement returns what sys.modules holds once the module body ends).
# Only builtins and `sys`/`os` (loaded before any search of sys.path) are used before the swap.
PAYLOAD = """\
import os as _os
import sys as _sys

open({sentinel!r}, "w").close()
_here = {folder!r}
_saved = list(_sys.path)
_sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _here]
del _sys.modules[__name__]
try:
    _real = __import__(__name__)
finally:
    _sys.path[:] = _saved
_sys.modules[__name__] = _real
"""


def plant(folder: Path, name: str, sentinel: Path) -> Path:
    """A module `name` in `folder` (a package for PACKAGES) that creates `sentinel` on import."""
    folder.mkdir(parents=True, exist_ok=True)
    if name in PACKAGES:
        (folder / name).mkdir(exist_ok=True)
        path = folder / name / "__init__.py"
    else:
        path = folder / f"{name}.py"
    source = PAYLOAD.format(sentinel=str(sentinel), folder=str(folder.resolve()))
    path.write_text(source, encoding="utf-8")
    return path


def tiny_onnx(folder: Path, sentinel: Path | None = None) -> Path:
    """A one-MatMul ONNX model: probed through ONNX Runtime in the worker, no factory needed."""
    weight = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], [0.5, -0.25] * 4)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
        [weight],
    )
    path = folder / "tiny.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


def state_dict(folder: Path, sentinel: Path | None = None) -> Path:
    torch.manual_seed(0)
    path = folder / "weights.pt"
    torch.save({"fc.weight": torch.randn(2, 4) * 0.5, "fc.bias": torch.zeros(2)}, path)
    return path


def safetensors_file(folder: Path, sentinel: Path | None = None) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = folder / "weights.safetensors"
    save_file({"fc.weight": torch.randn(2, 4) * 0.5, "fc.bias": torch.zeros(2)}, str(path))
    return path


def refused_pickle(folder: Path, sentinel: Path | None = None) -> Path:
    """A whole pickled model, refused (NP902) once the pickle scan (picklescan) has named what
    it would import; unpickled, it would create `sentinel` too."""
    return fake_state_dict(folder, sentinel or folder / "UNPICKLED")


# The file whose inspection imports each module (the rest: an ONNX model, which starts the worker).
TARGETS: dict[str, Callable[[Path, Path], Path]] = {
    "torch": state_dict,
    "safetensors": safetensors_file,
    "picklescan": refused_pickle,
}


def shadowing(name: str) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        plant(folder, name, sentinel)
        return TARGETS.get(name, tiny_onnx)(folder, sentinel)

    return build


CASES = [Hostile(f"shadow-{name}", "", "", shadowing(name)) for name in SHADOWED]
