# ruff: noqa
# Ints past the float range: float(10**400) raised OverflowError wherever a rule read a number.
import torch
from torch import nn

model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
lr = 10**64 * 10**64 * 10**64 * 10**64 * 10**64 * 10**64 * 10**64
optimizer = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=-lr)
for epoch in range(lr):
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
grid = {"lr": np.linspace(0, 1, num=lr), "wd": np.logspace(-5, 0, num=float("inf"))}
