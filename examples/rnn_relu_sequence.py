"""A vanilla RNN with ReLU recurrence on a synthetic sequence task (no data download).

Task: read a sequence of random numbers and say whether its running total ends above zero. The
numbers are generated with a fixed seed, so the run is reproducible and needs nothing but torch.

Lesson (seed, activations: tanh for recurrent nets): the same weight matrix multiplies the hidden
state at every step. With tanh the state stays in [-1, 1]; with ReLU nothing bounds it, so once the
recurrent matrix has a gain above one along some direction the state, and the gradient back through
time, grow geometrically with sequence length. The script prints the largest hidden activation of
each epoch: with ReLU it climbs past 10 within five epochs here, with tanh it cannot leave [-1, 1].
On this short, easy task the ReLU net still learns; the risk grows with sequence length and
learning rate. `--nonlinearity tanh` is the fix.

Expected nnprobe findings: NP109 (the `nonlinearity="relu"` argument of nn.RNN).
"""

import argparse

import torch
from torch import nn


class SequenceClassifier(nn.Module):
    def __init__(self, hidden_size: int, nonlinearity: str) -> None:
        super().__init__()
        if nonlinearity == "relu":
            self.rnn = nn.RNN(1, hidden_size, batch_first=True, nonlinearity="relu")
        else:
            self.rnn = nn.RNN(1, hidden_size, batch_first=True, nonlinearity="tanh")
        self.head = nn.Linear(hidden_size, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states, _ = self.rnn(x)
        return self.head(states[:, -1]), states


def make_data(n: int, length: int, generator: torch.Generator):
    x = torch.randn(n, length, 1, generator=generator)
    y = (x.sum(dim=(1, 2)) > 0).long()
    return x, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nonlinearity", choices=["relu", "tanh"], default="relu")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--length", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    X_train, y_train = make_data(2048, args.length, generator)
    X_val, y_val = make_data(512, args.length, generator)

    model = SequenceClassifier(args.hidden, args.nonlinearity)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()

    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(len(X_train))
        total, peak = 0.0, 0.0
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            optimizer.zero_grad()
            logits, states = model(X_train[idx])
            loss = loss_fn(logits, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            peak = max(peak, states.detach().abs().max().item())
        scheduler.step()

        model.eval()
        with torch.no_grad():
            logits, _ = model(X_val)
            accuracy = (logits.argmax(dim=1) == y_val).float().mean().item()
        print(
            f"epoch {epoch}/{args.epochs}  {args.nonlinearity}  "
            f"train loss {total / len(X_train):.4f}  val accuracy {accuracy:.4f}  "
            f"max |hidden| {peak:.3g}"
        )


if __name__ == "__main__":
    main()
