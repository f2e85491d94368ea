"""An MLP on scikit-learn's 8x8 digits written the idiomatic way: nnprobe has nothing to say.

What it does right, each the fix for one of the other examples or for a rule:
standardised inputs, ReLU hidden layers with PyTorch's default init, Adam at lr=1e-3 with
ReduceLROnPlateau, `optimizer.zero_grad()` every step, validation under `model.eval()` and
`torch.no_grad()`, dropout and a little weight decay against over-fitting, early stopping, and the
best checkpoint saved as a state_dict and read back with `torch.load(..., weights_only=True)`.

Expected nnprobe findings: none.
"""

import argparse
import tempfile
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn


class MLP(nn.Module):
    def __init__(self, n_features: int, n_classes: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


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


def evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module):
    model.eval()
    with torch.no_grad():
        logits = model(X)
        return loss_fn(logits, y).item(), (logits.argmax(dim=1) == y).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    model = MLP(X_train.shape[1], 10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2)
    loss_fn = nn.CrossEntropyLoss()

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "best.pt"
        best_loss, stale = float("inf"), 0
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

            val_loss, accuracy = evaluate(model, X_val, y_val, loss_fn)
            scheduler.step(val_loss)
            print(
                f"epoch {epoch}/{args.epochs}  train loss {total / len(X_train):.4f}  "
                f"val loss {val_loss:.4f}  val accuracy {accuracy:.4f}"
            )
            if val_loss < best_loss:
                best_loss, stale = val_loss, 0
                torch.save(model.state_dict(), checkpoint)
            else:
                stale += 1
                if stale >= args.patience:
                    print(f"early stop: no improvement for {args.patience} epochs")
                    break

        model.load_state_dict(torch.load(checkpoint, weights_only=True))
    val_loss, accuracy = evaluate(model, X_val, y_val, loss_fn)
    print(f"best checkpoint: val loss {val_loss:.4f}  val accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()
