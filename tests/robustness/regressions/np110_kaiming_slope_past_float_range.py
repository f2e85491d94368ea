# ruff: noqa
# The fuzzer's shrunk input: a leaky-ReLU slope of 1e308 overflowed slope**2 in NP110's gain
# check (OverflowError: Numerical result out of range); 10**400 overflowed float().
import torch
import torch.nn as nn

nn.init.kaiming_normal_(self.fc0.weight, 1e308)
nn.init.kaiming_uniform_(layer.weight, a=10**400)
nn.init.xavier_uniform_(w, gain=nn.init.calculate_gain("leaky_relu", 1e200))
nn.init.xavier_normal_(w, gain=10**400)
self.w = nn.Parameter(torch.randn(64, 64) * 10**400)
