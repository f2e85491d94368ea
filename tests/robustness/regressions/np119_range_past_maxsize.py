# ruff: noqa
# The fuzzer's shrunk input: len(range(2**64)) raised OverflowError in NP119 (and in the epoch
# counters of NP103/NP113), isolating the rule as NP907.
import torch

for x, y in train_loader:
    for epoch in range(18446744073709551616):
        with torch.no_grad():
            for epoch in range(0.0):
                with torch.no_grad():
                    pass
