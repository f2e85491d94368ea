"""Runs an ONNX graph over the probe set in sub-batches and folds each into streaming statistics.

The session's outputs are per-value reductions computed inside the graph (reductions.py), so only
small tensors leave ONNX Runtime and memory follows the sub-batch size, not the probe size. The
reductions read every tracked value, which keeps ONNX Runtime from fusing the node that makes it
into its neighbour (a Conv+Relu fusion would hide the ReLU), at every optimisation level.
bench/probe_bench.py measures the levels: ALL (which adds the NCHWc conv layouts) was fastest on
the MLP, the CNNs and the transformer, EXTENDED on the LSTM by a few percent, so ALL is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nnprobe.inspectors.activation_context import ValueSummary
from nnprobe.probe.graph import LayerGraph, expose
from nnprobe.probe.inputs import ProbeInputs
from nnprobe.probe.reductions import ReductionPlan, batch_from_outputs, bounds_feed, plan_reductions
from nnprobe.probe.stats import StatsSpec, ValueStats, resize_mean_image

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
    # Idle pool threads spin by default; on a machine shared with other work (or with numpy's own
    # threads between sub-batches) spinning cost 1.3-1.5x in bench/probe_bench.py.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options


class ProbeSession:
    """An ONNX Runtime session over the graph with in-graph reductions (reductions.py), and, made
    when first needed, one over the graph with every tracked value exposed whole."""

    def __init__(
        self,
        model: onnx.ModelProto,
        graph: LayerGraph,
        level: str = DEFAULT_OPT_LEVEL,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        self.model, self.graph, self.level, self.threads = model, graph, level, threads
        self.plan: ReductionPlan = plan_reductions(model, graph)
        self.session = ort.InferenceSession(
            self.plan.model.SerializeToString(),
            session_options(level, threads),
            providers=["CPUExecutionProvider"],
        )
        pass
        self._whole: onnxruntime.InferenceSession | None = None

    def whole(self) -> onnxruntime.InferenceSession:
        """The session that hands back every tracked value whole (for sub-batches with NaN/Inf)."""
        if self._whole is None:
            import onnxruntime as ort

            exposed = expose(self.model, self.graph.output_names)
            self._whole = ort.InferenceSession(
                exposed.SerializeToString(),
                session_options(self.level, self.threads),
                providers=["CPUExecutionProvider"],
            )
        return self._whole


def make_session(
    model: onnx.ModelProto, graph: LayerGraph, level: str = DEFAULT_OPT_LEVEL, threads: int = 0
) -> ProbeSession:
    """A CPU session whose outputs are the reductions of every tracked value."""
    return ProbeSession(model, graph, level, threads)


def sub_batches(count: int, size: int) -> list[tuple[int, int]]:
    size = max(1, size)
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def run_probe(
    session: ProbeSession,
    graph: LayerGraph,
    inputs: ProbeInputs,
    *,
    spec: StatsSpec | None = None,
    sub_batch: int = DEFAULT_SUB_BATCH,
) -> list[ValueSummary]:
    """Statistics of every tracked value over all probe inputs.

    Each sub-batch's reductions are merged into the running statistics and dropped. After a
    sub-batch with non-finite or fp16-overflowing values, the rest run through the whole-value
    session (a model that overflows once usually does again), measured in numpy."""
    import numpy as np

    spec = spec or StatsSpec()
    values = graph.values
    stats = [
        ValueStats(v.kind, unit_axis=v.unit_axis, spec=spec, correlate_input=v.correlate_input)
        for v in values
    ]
    plan = session.plan
    names = plan.output_names + [values[i].name for i in plan.whole]
    dtype = np.dtype(_feed_dtype(session.session, graph))
    bounds = bounds_feed(plan, spec)
    correlating = any(v.correlate_input for v in values)
    whole = False
    for start, end in sub_batches(inputs.count, sub_batch):
        feed = np.ascontiguousarray(inputs.x[start:end], dtype=dtype)
        image = feed if correlating and feed.ndim == 4 else None
        if not whole:
            whole = not _run_reduced(session, names, feed, image, bounds, stats)
        if whole:
            outputs: Sequence[Any] = session.whole().run(
                graph.output_names, {graph.input_name: feed}
            )
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


def _run_reduced(
    session: ProbeSession,
    names: list[str],
    feed: Any,
    image: Any,
    bounds: dict[str, Any],
    stats: list[ValueStats],
) -> bool:
    """One sub-batch through the reducing session, merged into `stats`; False (nothing merged)
    when some value needs measuring whole."""
    import numpy as np

    plan, graph = session.plan, session.graph
    feeds = {graph.input_name: feed, **bounds}
    images: dict[str, Any] = {}
    for name, (h, w) in plan.image_inputs.items():
        if image is None:
            return False
        images[name] = resize_mean_image(image, h, w)
        feeds[name] = images[name][:, None]
    got = dict(zip(names, session.session.run(names, feeds), strict=True))
    batches = []
    for reduced in plan.reduced:
        fetched = {k: got[v] for k, v in reduced.outputs.items()}
        picture = images.get(reduced.image) if reduced.image else None
        batch = batch_from_outputs(stats[reduced.index], reduced, fetched, picture)
        if batch is None:
            return False
        batches.append((reduced.index, batch))
    whole_batches = []
    for i in plan.whole:
        batch = stats[i].reduce(
            np.asarray(got[graph.values[i].name]),
            image if graph.values[i].correlate_input else None,
        )
        whole_batches.append((i, batch))
    del got
    for i, batch in batches + whole_batches:
        if batch is not None:
            stats[i].merge(batch)
    return True


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
