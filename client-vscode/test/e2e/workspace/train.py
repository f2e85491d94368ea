"""A small digits classifier with a bug nnprobe finds: softmax before CrossEntropyLoss."""

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def main() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10, gamma=0.5)
    loss_fn = nn.CrossEntropyLoss()
    x = torch.randn(64, 64)
    y = torch.randint(0, 10, (64,))
    for _ in range(20):
        optimizer.zero_grad()
        logits = model(x)
        loss = loss_fn(torch.softmax(logits, dim=1), y)
        loss.backward()
        optimizer.step()
        scheduler.step()
    torch.save(model.state_dict(), "model.pt")


if __name__ == "__main__":
    main()
