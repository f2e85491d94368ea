"""Workspace code with a visible side effect: building Net writes imported.txt beside it.

The untrusted end-to-end step checks the file never appears: nnprobe must not import workspace
code (model factories) in a workspace the user has not trusted.
"""

from pathlib import Path

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        Path(__file__).with_name("imported.txt").write_text("workspace code ran\n")
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)
