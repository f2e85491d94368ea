"""A deep, narrow MLP with sigmoid hidden activations on scikit-learn's 8x8 digits.

Lesson (seed, activations and normalisation): the sigmoid's derivative is at most 0.25, so each
sigmoid layer shrinks the gradient flowing back through it; after seven of them the first layers
barely move and the loss sits near log(10) = 2.30 for many epochs. The script prints the gradient
norm of the first and the last weight layer after training so the vanishing is visible (about
1e-6 against 1). Adding `nn.BatchNorm1d(HIDDEN)` after each Linear lets the same net reach about 70%
validation accuracy in five epochs; with `nn.ReLU()` in place of the sigmoids the first layer's
gradient becomes the same order as the last layer's.

Expected nnprobe findings: NP108 (sigmoid between weight layers of a net with >= 3 of them) and
NP117 (8 stacked weight layers with no normalisation layer and no residual connection).
"""

import argparse

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn

HIDDEN = 32


def make_model(n_features: int, n_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_features, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.Sigmoid(),
        nn.Linear(HIDDEN, n_classes),
    )


def load_data(seed: int):
    X, y = load_digits(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(
        X, y, test_size=0.25, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return (
        torch.tensor(scaler.transform(X_train), dtype=torch.float32),
        torch.tensor(scaler.transform(X_val), dtype=torch.float32),
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
    model = make_model(X_train.shape[1], 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

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
        print(
            f"epoch {epoch}/{args.epochs}  train loss {total / len(X_train):.4f}  "
            f"val accuracy {accuracy:.4f}"
        )

    linears = [m for m in model if isinstance(m, nn.Linear)]
    print(
        f"gradient norm: first layer {linears[0].weight.grad.norm():.2e}, "
        f"last layer {linears[-1].weight.grad.norm():.2e}"
    )


if __name__ == "__main__":
    main()
