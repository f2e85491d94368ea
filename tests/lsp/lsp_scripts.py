"""Training scripts the LSP tests open, each with the findings nnprobe must report on it."""

BUGGY = """\
import torch
import torch.nn.functional as F
from torch import nn

model = nn.Linear(10, 3)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def train_step(x, y):
    optimizer.zero_grad()
    logits = model(x)
    loss = criterion(F.softmax(logits, dim=1), y)
    loss.backward()
    optimizer.step()
    return loss
"""

CLEAN = BUGGY.replace("criterion(F.softmax(logits, dim=1), y)", "criterion(logits, y)")

# A BMP accent, an emoji and a mathematical letter (both outside the BMP: two UTF-16 units each)
# before the finding on the same line.
UNICODE = BUGGY.replace(
    "    loss = criterion(F.softmax(logits, dim=1), y)",
    '    label = "é😀𝐱"; loss = criterion(F.softmax(logits, dim=1), y)',
)

FIX_ALL = """\
import torch
import torch.nn.functional as F
from torch import nn

model = nn.Linear(10, 3)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def train(loader):
    for x, y in loader:
        logits = model(x)
        loss = criterion(F.softmax(logits, dim=1), y)
        loss.backward()
        optimizer.step()


def evaluate(x, y):
    return F.cross_entropy(x.softmax(dim=1), y)


checkpoint = torch.load("model.pt")
"""
