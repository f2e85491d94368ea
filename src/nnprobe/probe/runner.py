"""Runs an ONNX graph over the probe set in sub-batches and folds each into streaming statistics.

The session's outputs are per-value reductions computed inside the graph (reductions.py), so only
small tensors leave ONNX Runtime and memory follows the sub-batch size, not the probe size. The
reductions read every tracked value, which keeps ONNX Runtime from fusing the node that makes it
into its neighbour (a Conv+Relu fusion would hide the ReLU), at every optimisation level.
bench/probe_bench.py measures the levels: ALL (which adds the NCHWc conv layouts) was fastest on
the MLP, the CNNs and the transformer, EXTENDED on the LSTM by a few percent, so ALL is the default.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnprobe.inspectors.activation_context import ValueSummary
from nnprobe.probe.graph import LayerGraph, build_graph, expose
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
    when first needed, one over the graph with every tracked value exposed whole.

    `weights` (name -> array) are handed to ONNX Runtime as in-memory initializers for a `model`
    whose initializers of those names are external placeholders (see `external_weights`): the
    graph is then planned and serialised once per architecture, not per checkpoint. With a
    `shared` session (one per architecture whose weights are graph inputs, see Architecture),
    no session is created: the weights go in with every run as `feeds`."""

    def __init__(
        self,
        model: onnx.ModelProto,
        graph: LayerGraph,
        level: str = DEFAULT_OPT_LEVEL,
        threads: int = 0,
        *,
        plan: ReductionPlan | None = None,
        serialized: bytes | None = None,
        weights: Mapping[str, Any] | None = None,
        shared: onnxruntime.InferenceSession | None = None,
    ) -> None:
        import numpy as np

        self.model, self.graph, self.level, self.threads = model, graph, level, threads
        self.plan: ReductionPlan = plan or plan_reductions(model, graph)
        self.weights = dict(weights or {})
        self.feeds: dict[str, Any] = {}
        if shared is not None:
            self.session = shared
            self.feeds = {k: np.ascontiguousarray(v) for k, v in self.weights.items()}
        else:
            self.session = self._create(serialized or self.plan.model.SerializeToString())
        self._whole: onnxruntime.InferenceSession | None = None

    def _create(self, serialized: bytes) -> onnxruntime.InferenceSession:
        import numpy as np
        import onnxruntime as ort

        options = session_options(self.level, self.threads)
        if self.weights:
            # The OrtValues borrow the arrays' memory: both stay referenced by this object.
            self.weights = {k: np.ascontiguousarray(v) for k, v in self.weights.items()}
            self._values = [ort.OrtValue.ortvalue_from_numpy(v) for v in self.weights.values()]
            options.add_external_initializers(list(self.weights), self._values)
        return ort.InferenceSession(serialized, options, providers=["CPUExecutionProvider"])

    def whole(self) -> onnxruntime.InferenceSession:
        """The session that hands back every tracked value whole (for sub-batches with NaN/Inf)."""
        if self._whole is None:
            exposed = expose(self.model, self.graph.output_names)
            self._whole = self._create(exposed.SerializeToString())
        return self._whole


def make_session(
    model: onnx.ModelProto, graph: LayerGraph, level: str = DEFAULT_OPT_LEVEL, threads: int = 0
) -> ProbeSession:
    """A CPU session whose outputs are the reductions of every tracked value."""
    return ProbeSession(model, graph, level, threads)


# Ops whose run time depends on ONNX Runtime seeing their weights as constants when the session is
# created (prepacked NCHWc convolution weights, BatchNorm folded into Conv): bench/probe_bench.py
# measured a ResNet-18 23-40% slower per run with its weights fed as inputs, while MLP, LSTM and
# transformer graphs ran as fast either way.
_BIND_AT_CREATION = frozenset({"Conv", "ConvTranspose"})


@dataclass
class Architecture:
    """What probing one exported architecture needs before any weights: its tracked values, the
    reduction plan and the serialised graph with external weight placeholders.

    A graph without convolutions also keeps one ONNX Runtime session per level whose weights are
    graph inputs (`fed`): a later checkpoint then creates no session at all, which was half of
    a transformer's second-checkpoint time. Convolutional graphs create a session per checkpoint
    with the weights bound as initializers, so ONNX Runtime can prepack and fold them."""

    model: onnx.ModelProto
    graph: LayerGraph
    plan: ReductionPlan
    serialized: bytes
    fed: bytes | None = None
    _shared: dict[tuple[str, int], onnxruntime.InferenceSession] = field(default_factory=dict)

    def session(
        self, weights: Mapping[str, Any], level: str = DEFAULT_OPT_LEVEL, threads: int = 0
    ) -> ProbeSession:
        shared = None
        if self.fed is not None:
            shared = self._shared.get((level, threads))
            if shared is None:
                import onnxruntime as ort

                shared = ort.InferenceSession(
                    self.fed, session_options(level, threads), providers=["CPUExecutionProvider"]
                )
                self._shared[(level, threads)] = shared
        return ProbeSession(
            self.model,
            self.graph,
            level,
            threads,
            plan=self.plan,
            serialized=self.serialized,
            weights=weights,
            shared=shared,
        )


_ARCHITECTURES: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], Architecture] = OrderedDict()
_KEPT_ARCHITECTURES = 8


def architecture(
    key: str,
    model: onnx.ModelProto,
    weight_names: Collection[str],
    module_names: Collection[str] | None = None,
    module_kinds: Mapping[str, str] | None = None,
) -> Architecture:
    """The Architecture of an exported graph, built once per process and key (a later checkpoint
    of the same architecture skips graph analysis, shape inference and serialising weights)."""
    cache_key = (key, tuple(sorted((module_kinds or {}).items())))
    found = _ARCHITECTURES.get(cache_key)
    if found is not None:
        _ARCHITECTURES.move_to_end(cache_key)
        return found
    placeholder = external_weights(model, weight_names)
    graph = build_graph(placeholder, module_names, module_kinds)
    plan = plan_reductions(placeholder, graph)
    fed = None
    if weight_names and not any(n.op_type in _BIND_AT_CREATION for n in model.graph.node):
        fed = weights_as_inputs(plan.model, weight_names).SerializeToString()
    built = Architecture(placeholder, graph, plan, plan.model.SerializeToString(), fed)
    _ARCHITECTURES[cache_key] = built
    while len(_ARCHITECTURES) > _KEPT_ARCHITECTURES:
        _ARCHITECTURES.popitem(last=False)
    return built


def external_weights(model: onnx.ModelProto, names: Collection[str]) -> onnx.ModelProto:
    """A copy of `model` whose initializers named in `names` hold no data and are marked
    external, to be supplied in memory (SessionOptions.add_external_initializers)."""
    import onnx as onnx_lib

    copy = onnx_lib.ModelProto()
    copy.CopyFrom(model)
    wanted = set(names)
    for tensor in copy.graph.initializer:
        if tensor.name not in wanted:
            continue
        name, dims, dtype = tensor.name, list(tensor.dims), tensor.data_type
        tensor.Clear()
        tensor.name, tensor.data_type = name, dtype
        tensor.dims.extend(dims)
        tensor.data_location = onnx_lib.TensorProto.EXTERNAL
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", "nnprobe-in-memory-weights"
    return copy


def weights_as_inputs(model: onnx.ModelProto, names: Collection[str]) -> onnx.ModelProto:
    """A copy of `model` whose initializers named in `names` are graph inputs instead (fed with
    every run, so one session serves every checkpoint of the architecture)."""
    import onnx as onnx_lib

    copy = onnx_lib.ModelProto()
    copy.CopyFrom(model)
    wanted = set(names)
    kept = []
    for tensor in copy.graph.initializer:
        if tensor.name in wanted:
            copy.graph.input.append(
                onnx_lib.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
            )
        else:
            kept.append(tensor)
    del copy.graph.initializer[:]
    copy.graph.initializer.extend(kept)
    return copy


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
    feeds = {graph.input_name: feed, **bounds, **session.feeds}
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
        batch = batch_from_outputs(fetched, picture)
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
