"""Trains net.Net, whose forward ends in softmax, with CrossEntropyLoss."""

import torch
from torch import nn

from net import Net


def main() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(64, 64)
    y = torch.randint(0, 10, (64,))
    for _ in range(5):
        optimizer.zero_grad()
        loss = loss_fn(torch.softmax(model(x), dim=1), y)
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), "model.pt")


if __name__ == "__main__":
    main()
