"""A zoo of tiny, seeded models built in code (torchinfo-style): the shapes the probe engine must
handle, including the awkward ones (a module called twice, tied weights, a forward that raises,
data-dependent control flow). Nothing here is saved to disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self, width: int = 32, depth: int = 3, act: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = 16
        for _ in range(depth - 1):
            layers += [nn.Linear(size, width), act()]
            size = width
        layers.append(nn.Linear(size, 4))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(8), BasicBlock(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


class ReusedReLU(nn.Module):
    """One ReLU module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))


class TiedWeights(nn.Module):
    """Two layers sharing one weight Parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(16, 16)
        self.decode = nn.Linear(16, 16)
        self.decode.weight = self.encode.weight
        self.act = nn.Tanh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.act(self.encode(x)))


class RaisesMidForward(nn.Module):
    """Runs two layers, then raises: hooks must still be removed and modes restored."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.act(self.fc1(x))
        raise RuntimeError(f"boom after {tuple(hidden.shape)}")


class DataDependent(nn.Module):
    """Chooses a branch per batch from the data: one trace cannot describe it."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.Linear(16, 16)
        self.down = nn.Linear(16, 16)
        self.act = nn.ReLU()
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.mean() > 0:
            x = self.act(self.up(x))
        else:
            x = self.act(self.down(x))
        return self.out(x)


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[[], nn.Module]
    shape: tuple[int, ...]
    raises: bool = False
    exportable: bool = True

    def build(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return self.factory()

    def inputs(self, count: int = 16, seed: int = 0) -> torch.Tensor:
        generator = torch.Generator().manual_seed(seed)
        return torch.randn((count, *self.shape), generator=generator)


ZOO = [
    ZooEntry("mlp", MLP, (16,)),
    ZooEntry("small_cnn", SmallCNN, (1, 8, 8)),
    ZooEntry("resnetish", ResNetish, (3, 16, 16)),
    ZooEntry("lstm", LSTMNet, (12, 8)),
    ZooEntry("transformer", TinyTransformer, (10, 8)),
    ZooEntry("reused_relu", ReusedReLU, (16,)),
    ZooEntry("tied_weights", TiedWeights, (16,)),
    ZooEntry("raises", RaisesMidForward, (16,), raises=True, exportable=False),
    ZooEntry("data_dependent", DataDependent, (16,), exportable=False),
]
RUNNABLE = [entry for entry in ZOO if not entry.raises]
EXPORTABLE = [entry for entry in ZOO if entry.exportable]
