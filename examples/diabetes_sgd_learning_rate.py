"""Regression on scikit-learn's diabetes data with plain SGD: lr 0.1 trains, lr 0.3 diverges.

Lesson (seed, learning rate): full-batch gradient descent on a mean squared error overshoots by
more than it corrects whenever the step size exceeds 2 / (largest curvature of the loss). On these
ten standardised, correlated features that limit is about 0.24: the default below (0.3) sends the
loss past 1e30, then to inf and NaN, within a few hundred steps, while `--lr 0.1` converges.

    python examples/diabetes_sgd_learning_rate.py            # lr 0.3: loss explodes, then nan
    python examples/diabetes_sgd_learning_rate.py --lr 0.1   # trains

Expected nnprobe findings: NP101 (error: the argparse default 0.3 reaches `SGD(lr=args.lr)`).
"""

import argparse
import math

import torch
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn


def load_data(seed: int):
    X, y = load_diabetes(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, random_state=seed)
    x_scaler = StandardScaler().fit(X_train)
    y_scaler = StandardScaler().fit(y_train.reshape(-1, 1))

    def tensors(features, target):
        return (
            torch.tensor(x_scaler.transform(features), dtype=torch.float32),
            torch.tensor(y_scaler.transform(target.reshape(-1, 1)), dtype=torch.float32),
        )

    return tensors(X_train, y_train), tensors(X_val, y_val)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    (X_train, y_train), (X_val, y_val) = load_data(args.seed)
    model = nn.Linear(X_train.shape[1], 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    loss_fn = nn.MSELoss()

    for epoch in range(1, args.epochs + 1):
        model.train()
        for _ in range(args.steps_per_epoch):
            optimizer.zero_grad()
            loss = loss_fn(model(X_train), y_train)
            loss.backward()
            optimizer.step()
        scheduler.step()

        model.eval()
        with torch.no_grad():
            val_loss = loss_fn(model(X_val), y_val).item()
        note = "  (diverged)" if not math.isfinite(val_loss) or val_loss > 1e6 else ""
        print(
            f"epoch {epoch}/{args.epochs}  lr={args.lr}  "
            f"train loss {loss.item():.4g}  val loss {val_loss:.4g}{note}"
        )


if __name__ == "__main__":
    main()
