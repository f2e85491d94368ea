"""A small CNN on scikit-learn's 8x8 digits that applies softmax before nn.CrossEntropyLoss.

Lesson: nn.CrossEntropyLoss applies log_softmax itself and expects raw logits. Feeding it
probabilities computes log_softmax(softmax(z)): the inputs to the loss are squeezed into [0, 1], so
even a perfectly confident prediction scores -log(e / (e + 9)) = 1.46 instead of 0, and the
gradients shrink as the softmax saturates. Watch the training loss stall near that floor while the
accuracy is already high. The fix is to return `self.fc(x)` from forward and apply softmax only
where probabilities are needed (at prediction time).

Expected nnprobe findings: NP104 (the `F.softmax(...)` in forward reaches nn.CrossEntropyLoss).
"""

import argparse

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return F.softmax(self.fc(x), dim=1)


def load_data(seed: int):
    X, y = load_digits(return_X_y=True)
    X = X.reshape(-1, 1, 8, 8)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    mean, std = X_train.mean(), X_train.std()
    X_train, X_val = (X_train - mean) / std, (X_val - mean) / std
    return (
        torch.tensor(X_train, dtype=torch.float32),
        torch.tensor(X_val, dtype=torch.float32),
        torch.tensor(y_train),
        torch.tensor(y_val),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    model = SmallCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    criterion = nn.CrossEntropyLoss()

    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(X_train))
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            optimizer.zero_grad()
            output = model(X_train[idx])
            loss = criterion(output, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()

        model.eval()
        with torch.no_grad():
            accuracy = (model(X_val).argmax(dim=1) == y_val).float().mean().item()
        print(
            f"epoch {epoch}/{args.epochs}  train loss {total / len(X_train):.4f}  "
            f"val accuracy {accuracy:.4f}"
        )


if __name__ == "__main__":
    main()
