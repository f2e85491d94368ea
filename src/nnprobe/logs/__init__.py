"""Training logs as curves: readers for the files people already write (CSV from Lightning's and
Keras' CSVLogger or a hand-written loop, JSON lines, TensorBoard event files) turned into one
Series model, so the NP5xx rules never care which writer produced a curve.

Pure Python except the TensorBoard reader, which imports the `tensorboard` package lazily (the
`logs` extra).
"""

from nnprobe.logs.reader import LogReader, is_log_name, read_log
from nnprobe.logs.series import Run, Series

__all__ = ["LogReader", "Run", "Series", "is_log_name", "read_log"]
