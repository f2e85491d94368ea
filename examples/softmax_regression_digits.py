"""Softmax regression on scikit-learn's 8x8 digits: large random init versus zero init.

Lesson (seed, examples 1 and 2): a single linear layer followed by softmax is a convex problem, so
starting from all-zero weights is fine; there is no symmetry to break with only one layer. Starting
from normal(0, 1) weights is what hurts: with 64 standardised inputs the first logits have a
standard deviation near 8, the softmax saturates, and training starts far from the optimum and
crawls. By default both are trained from the same seed and their validation accuracy curves are
printed side by side; `--init normal` or `--init zero` trains one:

    python examples/softmax_regression_digits.py                 # both, then the two curves
    python examples/softmax_regression_digits.py --init normal
    python examples/softmax_regression_digits.py --init zero

Expected nnprobe findings: NP111 (the `nn.init.normal_(..., std=1.0)` line).

Must stay silent: NP112. Constant init is a problem only in the hidden layers of a multi-layer
net (every hidden unit would stay identical); this model has no hidden layer, so `nn.init.zeros_`
is fine.
"""

import argparse

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn


class SoftmaxRegression(nn.Module):
    def __init__(self, n_features: int, n_classes: int, init: str) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)
        if init == "normal":
            nn.init.normal_(self.linear.weight, mean=0.0, std=1.0)
        else:
            nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def load_data(seed: int):
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    return (
        torch.tensor(X_train, dtype=torch.float32),
        torch.tensor(X_val, dtype=torch.float32),
        torch.tensor(y_train),
        torch.tensor(y_val),
    )


def train(init: str, args: argparse.Namespace, data) -> list[float]:
    """Train one model; print a line per epoch; return the validation accuracy after each."""
    torch.manual_seed(args.seed)
    X_train, X_val, y_train, y_val = data
    model = SoftmaxRegression(X_train.shape[1], 10, init)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

    curve = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(X_train))
        total = 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        scheduler.step()

        model.eval()
        with torch.no_grad():
            accuracy = (model(X_val).argmax(dim=1) == y_val).float().mean().item()
        curve.append(accuracy)
        print(
            f"epoch {epoch}/{args.epochs}  init={init}  "
            f"train loss {total / len(X_train):.4f}  val accuracy {accuracy:.4f}"
        )
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", choices=["both", "normal", "zero"], default="both")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = load_data(args.seed)
    inits = ["normal", "zero"] if args.init == "both" else [args.init]
    curves = {init: train(init, args, data) for init in inits}
    if len(curves) > 1:
        print("\nvalidation accuracy per epoch")
        print("epoch  " + "  ".join(f"{init:>8}" for init in curves))
        for epoch in range(args.epochs):
            row = "  ".join(f"{curve[epoch]:8.4f}" for curve in curves.values())
            print(f"{epoch + 1:5d}  {row}")


if __name__ == "__main__":
    main()
