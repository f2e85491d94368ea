"""nnprobe: finds why a neural network will not train."""

__version__ = "0.1.0"
