"""A workspace for the runtime end-to-end tests: a training script the factory discovery finds
(it saves `runs/ckpt_{epoch}.pt`), a model whose forward hangs (for crashes and cancellation),
and checkpoints written the way a training run writes them: a real MLP trained on digits, saved
under the script's layer names, with half of fc1's units planted dead."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import torch
from digits_models import trained
from lsprotocol import types
from pytest_lsp import LanguageClient

TRAIN = """\
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


if __name__ == "__main__":
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for epoch in range(3):
        loss = model(torch.randn(8, 64)).sum()
        loss.backward()
        optimizer.step()
        torch.save(model.state_dict(), f"runs/ckpt_{epoch}.pt")
"""

HANGS = """\
import time
from pathlib import Path

import torch
from torch import nn


class Hangs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)

    def forward(self, x):
        Path(__file__).with_name("forward-started").touch()
        time.sleep(600)
        return self.fc1(x)


if __name__ == "__main__":
    torch.save(Hangs().state_dict(), "hangs/hangs.pt")
"""

GATED = """\
import time
from pathlib import Path

import torch
from torch import nn


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        here = Path(__file__)
        here.with_name("forward-started").touch()
        deadline = time.monotonic() + 60
        while not here.with_name("open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.fc2(torch.relu(self.fc1(x)))


if __name__ == "__main__":
    model = Gated()
    for epoch in range(3):
        torch.save(model.state_dict(), f"gated/gate_{epoch}.pt")
"""

FILES = {"train.py": TRAIN, "hangs/train_hangs.py": HANGS}
FC1_LINE = TRAIN.splitlines().index("        self.fc1 = nn.Linear(64, 64)")  # 0-based
CLASS_LINE = TRAIN.splitlines().index("class Net(nn.Module):")


def save_checkpoint(path: Path, dead: int = 32) -> Path:
    """The digits MLP under Net's names, with `dead` of fc1's 64 units never positive."""
    model = trained()
    names = {"0": "fc1", "2": "fc2", "4": "fc3"}
    state = {}
    for key, value in model.state_dict().items():
        index, local = key.split(".", 1)
        state[f"{names[index]}.{local}"] = value.clone()
    state["fc1.bias"][:dead] = -1e3
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def save_hanging(path: Path) -> Path:
    torch.manual_seed(0)
    torch.save({"fc1.weight": torch.randn(32, 64) * 0.1, "fc1.bias": torch.zeros(32)}, path)
    return path


def save_gated(path: Path, dead: int) -> Path:
    """Weights for GATED, whose forward waits for a file named `open` beside the script (the
    test holds a probe in the worker with it), with `dead` of fc1's 32 units never positive."""
    torch.manual_seed(0)
    bias = torch.zeros(32)
    bias[:dead] = -1e3
    state = {
        "fc1.weight": torch.randn(32, 64) * 0.1,
        "fc1.bias": bias,
        "fc2.weight": torch.randn(10, 32) * 0.1,
        "fc2.bias": torch.zeros(10),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def changed(client: LanguageClient, *paths: Path) -> None:
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[
                types.FileEvent(uri=p.as_uri(), type=types.FileChangeType.Created) for p in paths
            ]
        )
    )


def codes(params: Any) -> set[str]:
    return {str(d.code) for d in params.diagnostics}


async def status(client: LanguageClient) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.probeStatus", arguments=[])
    )
    return dict(result)


async def until(condition: Any, what: str, timeout: float = 60.0) -> None:
    """Wait for a condition on the file system or the client's records (checked every 20 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def state_until(
    client: LanguageClient, condition: Any, what: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Wait for a condition on the server's probe status (nnprobe.probeStatus); answer it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await status(client)
        if condition(state):
            return state
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {state}")
        await asyncio.sleep(0.02)


async def idle(client: LanguageClient, timeout: float = 60.0) -> None:
    """Wait until the server has no inspection running or waiting for its pause to end."""
    await state_until(
        client,
        lambda state: not state["running"] and not state["pending"],
        "the inspections to finish",
        timeout,
    )
