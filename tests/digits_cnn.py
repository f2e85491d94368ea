"""A small CNN trained here on scikit-learn's digits (8x8, ships offline), and the files a front
door needs to picture it: the state_dict, the factory script that builds it, and a probe .npz."""

from __future__ import annotations

import copy
import textwrap
from functools import cache
from pathlib import Path

import numpy as np
import torch
from digits_models import digits, fit
from torch import nn

FACTORY = textwrap.dedent(
    """
    import torch
    from torch import nn


    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.relu2 = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.fc1 = nn.Linear(32 * 4 * 4, 64)
            self.relu3 = nn.ReLU()
            self.fc2 = nn.Linear(64, 10)

        def forward(self, x):
            x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
            return self.fc2(self.relu3(self.fc1(torch.flatten(x, 1))))
    """
)


def _namespace() -> dict[str, object]:
    space: dict[str, object] = {}
    exec(compile(FACTORY, "model.py", "exec"), space)
    return space


def images() -> tuple[np.ndarray, np.ndarray]:
    """Digits as (N, 1, 8, 8) float32 in [0, 1] and int64 labels."""
    raw, _, y = digits()
    return (raw / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), y


def fresh(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    cls = _namespace()["DigitsCNN"]
    assert isinstance(cls, type)
    return cls().eval()  # type: ignore[no-any-return]


@cache
def _trained(steps: int) -> nn.Module:
    x, y = images()
    return fit(fresh(), x, y, "Adam", 3e-3, steps)


def trained(steps: int = 150) -> nn.Module:
    return copy.deepcopy(_trained(steps))


def write_workspace(root: Path, model: nn.Module, name: str = "cnn.pt") -> Path:
    """model.py, probe.npz and the state_dict under `root`; returns the checkpoint's path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "model.py").write_text(FACTORY, encoding="utf-8")
    x, y = images()
    np.savez(root / "probe.npz", x=x, y=y)
    path = root / name
    torch.save(model.state_dict(), path)
    return path


def write_onnx(path: Path, model: nn.Module) -> Path:
    x, _ = images()
    torch.onnx.export(
        model,
        (torch.from_numpy(x[:2]),),
        str(path),
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    return path
