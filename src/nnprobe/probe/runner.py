"""Runs an ONNX graph with every tracked value exposed, over the probe set in sub-batches.

Each sub-batch's outputs are folded into streaming statistics and dropped, so memory follows the
sub-batch size, not the probe size. Exposing a value as a graph output keeps ONNX Runtime from
fusing the node that makes it into its neighbour (a Conv+Relu fusion would hide the ReLU), at every
optimisation level. bench/probe_bench.py measures the levels with every output kept: ALL (which adds
the NCHWc conv layouts) was fastest on the MLP, the CNNs and the transformer, EXTENDED on the LSTM
by a few percent, so ALL is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nnprobe.inspectors.activation_context import ValueSummary
from nnprobe.probe.graph import LayerGraph, expose
from nnprobe.probe.inputs import ProbeInputs
from nnprobe.probe.stats import StatsSpec, ValueStats

if TYPE_CHECKING:
    import onnx
    import onnxruntime

DEFAULT_SUB_BATCH = 64
DEFAULT_OPT_LEVEL = "all"
OPT_LEVELS = ("disable", "basic", "extended", "all")


def session_options(level: str = DEFAULT_OPT_LEVEL, threads: int = 0) -> onnxruntime.SessionOptions:
    import onnxruntime as ort

    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise ValueError(f"unknown ONNX Runtime optimisation level {level!r} ({OPT_LEVELS})")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return options


def make_session(
    model: onnx.ModelProto, graph: LayerGraph, level: str = DEFAULT_OPT_LEVEL, threads: int = 0
) -> onnxruntime.InferenceSession:
    """A CPU session whose outputs include every tracked value."""
    import onnxruntime as ort

    exposed = expose(model, graph.output_names)
    return ort.InferenceSession(
        exposed.SerializeToString(),
        session_options(level, threads),
        providers=["CPUExecutionProvider"],
    )


def sub_batches(count: int, size: int) -> list[tuple[int, int]]:
    size = max(1, size)
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def run_probe(
    session: onnxruntime.InferenceSession,
    graph: LayerGraph,
    inputs: ProbeInputs,
    *,
    spec: StatsSpec | None = None,
    sub_batch: int = DEFAULT_SUB_BATCH,
) -> list[ValueSummary]:
    """Statistics of every tracked value over all probe inputs."""
    import numpy as np

    values = graph.values
    stats = [
        ValueStats(v.kind, unit_axis=v.unit_axis, spec=spec, correlate_input=v.correlate_input)
        for v in values
    ]
    names = [v.name for v in values]
    dtype = np.dtype(_feed_dtype(session, graph))
    correlating = [i for i, v in enumerate(values) if v.correlate_input]
    for start, end in sub_batches(inputs.count, sub_batch):
        feed = np.ascontiguousarray(inputs.x[start:end], dtype=dtype)
        outputs: Sequence[Any] = session.run(names, {graph.input_name: feed})
        image = feed if correlating and feed.ndim == 4 else None
        for i, array in enumerate(outputs):
            stats[i].update(np.asarray(array), image if values[i].correlate_input else None)
        del outputs
    return [
        s.summary(
            name=v.name,
            module=v.module,
            op=v.op,
            order=v.order,
            layer=v.layer,
            source=v.source,
            is_output=v.is_output,
        )
        for v, s in zip(values, stats, strict=True)
    ]


def _feed_dtype(session: onnxruntime.InferenceSession, graph: LayerGraph) -> str:
    types = {
        "tensor(float)": "float32",
        "tensor(double)": "float64",
        "tensor(float16)": "float16",
        "tensor(int64)": "int64",
        "tensor(int32)": "int32",
        "tensor(bool)": "bool",
        "tensor(uint8)": "uint8",
    }
    for inp in session.get_inputs():
        if inp.name == graph.input_name:
            return types.get(inp.type, graph.input_dtype)
    return graph.input_dtype
