"""Hostile pickles whose NP902 message used to be wrong: each must be refused and named for what
it is (protocol 0/1 pickles were "not a PyTorch checkpoint", a private torch opener "corrupt
pickle data", a subprocess call "a whole pickled model", a computed name "unknown.unknown")."""

from __future__ import annotations

import os
import pickle
import subprocess
from collections.abc import Callable
from pathlib import Path

import torch
from corpus import Hostile


class Call:
    """Unpickling this calls `function(*args)`; every builder makes the call create the sentinel."""

    def __init__(self, function: Callable[..., object], *args: object) -> None:
        self.function = function
        self.args = args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (self.function, self.args)


def old_protocol(protocol: int) -> Callable[[Path, Path], Path]:
    def build(folder: Path, sentinel: Path) -> Path:
        path = folder / f"weights_p{protocol}.pt"
        payload = Call(os.system, f"touch {sentinel}")
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
        return path

    return build


def popen(folder: Path, sentinel: Path) -> Path:
    path = folder / "model.ckpt"
    path.write_bytes(pickle.dumps(Call(subprocess.Popen, ["touch", str(sentinel)]), protocol=4))
    return path


def torch_open_file(folder: Path, sentinel: Path) -> Path:
    path = folder / "checkpoint.pth"
    # torch.serialization._open_file(name, mode) opens (so creates) any path it is given
    open_file = Call(torch.serialization._open_file, str(sentinel), "w")
    path.write_bytes(pickle.dumps(open_file, protocol=2))
    return path


def computed_name(folder: Path, sentinel: Path) -> Path:
    """STACK_GLOBAL whose module name is the result of a call (str("posix")): a scanner reading
    opcodes cannot know it without running the pickle."""
    path = folder / "weights.pt"
    program = (
        b"\x80\x04"
        + b"\x8c\x08builtins\x8c\x03str\x93"  # STACK_GLOBAL builtins.str
        + b"\x8c\x05posix\x85R"  # str("posix"): the module name, computed
        + b"\x8c\x06system\x93"  # STACK_GLOBAL <computed>.system
        + pickle.dumps(f"touch {sentinel}", protocol=4)[2:-1]  # the argument string
        + b"\x85R."  # TUPLE1, REDUCE, STOP
    )
    path.write_bytes(program)
    return path


CASES = [
    Hostile("protocol-0-pickle", "NP902", "posix.system", old_protocol(0)),
    Hostile("protocol-1-pickle", "NP902", "posix.system", old_protocol(1)),
    Hostile("subprocess-popen", "NP902", "a pickle that calls subprocess.Popen", popen),
    Hostile("torch-open-file", "NP902", "torch.serialization._open_file", torch_open_file),
    Hostile("computed-global", "NP902", "computed while unpickling", computed_name),
]
