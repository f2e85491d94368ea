"""Tiny real models trained here on scikit-learn's digits (ships offline), seeded and cached per
test session: the evidence the activation rules are calibrated against."""

from __future__ import annotations

import copy
from functools import cache

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn


@cache
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw 0-16 pixels, standardised pixels, labels) as float32/int64 arrays."""
    x, y = load_digits(return_X_y=True)
    raw = x.astype(np.float32)
    standard = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    return raw, standard, y.astype(np.int64)


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def fit(
    model: nn.Module, x: np.ndarray, y: np.ndarray, optimizer: str, lr: float, steps: int
) -> nn.Module:
    """`steps` seeded mini-batches of 128 with cross-entropy; the model comes back in eval mode."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = getattr(torch.optim, optimizer)(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (128,), generator=generator)
        loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@cache
def _trained(optimizer: str, lr: float, steps: int) -> nn.Sequential:
    _, x, y = digits()
    model = mlp()
    fit(model, x, y, optimizer, lr, steps)
    return model


def trained(optimizer: str = "Adam", lr: float = 1e-2, steps: int = 200) -> nn.Sequential:
    """A fresh copy (tests may plant faults in it) of the cached trained model."""
    return copy.deepcopy(_trained(optimizer, lr, steps))


def accuracy(model: nn.Module) -> float:
    _, x, y = digits()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def dead_fraction(model: nn.Sequential, relu_index: int) -> float:
    """Ground truth, by plain torch: units of model[relu_index] never positive on all digits."""
    _, x, _ = digits()
    with torch.no_grad():
        hidden = model[: relu_index + 1](torch.from_numpy(x))
    return float((hidden.max(0).values <= 0).float().mean())


@cache
def hidden_features(n: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """`n` (up to 5,391) real 512-d features and their labels: the digits and their one-pixel
    shifts (right, then down) through the hidden ReLU layer of a 64-512-10 MLP trained on them.
    What a wide penultimate layer looks like, at the sizes the UMAP settings are tuned for."""
    raw, _, y = digits()
    images = raw.reshape(-1, 8, 8) / 16.0
    shifted = [images, np.roll(images, 1, axis=2), np.roll(images, 1, axis=1)]
    x = np.concatenate([i.reshape(-1, 64) for i in shifted]).astype(np.float32)
    labels = np.concatenate([y] * len(shifted))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 10))
    fit(model, x, labels, "Adam", 1e-3, 300)
    with torch.no_grad():
        features = model[:2](torch.from_numpy(x[:n])).numpy()
    return features, labels[:n]
