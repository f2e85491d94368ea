"""A small CNN on scikit-learn's 8x8 digits trained with SGD at lr=0.5: its ReLUs die.

Lesson (learning rate, seen in the checkpoint): with momentum 0.9 a step of 0.5 throws the
weights so far in the first epoch that the pre-activations of `conv2` and `fc1` turn negative for
every input. A ReLU that never fires passes back no gradient, so those units never recover: the
loss sits at log(10) = 2.30 and the accuracy at chance (10%) for every later epoch. Its twin,
digits_cnn_lr_ok.py, is the same script at lr=0.02 and reaches about 96% in the same epochs.

    python examples/digits_cnn_lr_too_high.py           # writes runs/digits_cnn_lr_too_high/
    nnprobe inspect examples/digits_cnn_lr_too_high.py runs/digits_cnn_lr_too_high/ \\
        --model 'runs/digits_cnn_lr_too_high/*.pt=examples/digits_cnn_lr_too_high.py:DigitsCNN' \\
        --probe examples/digits_cnn_lr_too_high.py:probe_batch

Each epoch overwrites `last.pt` (the model's state_dict) and appends a row to `metrics.csv` in the
run folder (`--out`), as a real run does; `probe_batch()` gives nnprobe the validation digits to
probe the checkpoint with.

Expected nnprobe findings: NP101 (error: SGD at lr 0.5).

Expected in its run: NP301 (the ReLUs after conv2 and fc1 never fire on the validation digits),
NP405 (no gradient reaches the weights in front of them) and NP502 (the validation loss stalls
while the learning rate stays put). (The same thrown weights also show as NP206, variance above
10; NP207, heavy-tailed spectra; and NP304, activations 3000x the input's scale at conv2.)
"""

import argparse
import csv
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self, n_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))
        return self.fc2(self.relu3(self.fc1(torch.flatten(x, 1))))


def load_data(seed: int = 0):
    """The digits as (N, 1, 8, 8) images standardised with the training split's mean and std."""
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


def probe_batch():
    """Inputs and labels for nnprobe to probe a checkpoint with: the validation digits."""
    _, X_val, _, y_val = load_data()
    return X_val, y_val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/digits_cnn_lr_too_high"))
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    X_train, X_val, y_train, y_val = load_data(args.seed)
    model = DigitsCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "metrics.csv", "w", newline="") as log:
        writer = csv.writer(log)
        writer.writerow(["epoch", "train_loss", "val_loss", "val_accuracy", "lr"])
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
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()

            model.eval()
            with torch.no_grad():
                logits = model(X_val)
                val_loss = loss_fn(logits, y_val).item()
                accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
            train_loss = total / len(X_train)
            writer.writerow([epoch, f"{train_loss:.5f}", f"{val_loss:.5f}", f"{accuracy:.4f}", lr])
            log.flush()
            torch.save(model.state_dict(), args.out / "last.pt")
            print(
                f"epoch {epoch}/{args.epochs}  train loss {train_loss:.4f}  "
                f"val loss {val_loss:.4f}  val accuracy {accuracy:.4f}"
            )
    print(f"wrote {args.out / 'last.pt'} and {args.out / 'metrics.csv'}")


if __name__ == "__main__":
    main()
