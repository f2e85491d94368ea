"""Per-value statistics computed inside the ONNX graph, so only small tensors leave ONNX Runtime.

Copying every intermediate value out of ONNX Runtime and reducing it in numpy cost as much as the
forward itself (bench/RESULTS-probe.md). Here each tracked value gets a few reduction nodes whose
outputs are all the runner fetches: its shape; per channel (axis 1 of an (N, C, rest) view) the
sum and the sum of squares, from which each channel's mean and M2 are merged with Chan's update in
float64 (the float32 cancellation is bounded by each channel's own mean-to-spread ratio; a test
holds a layer offset by 50 to 1e-3 of its std); min, max or per-unit maxima; per-sample counts of
positives (units that can die) and of entries beyond the saturation bounds (sigmoid/tanh; the
bounds are fed at run time, so one graph serves every StatsSpec); and for NP306 the per-channel sum
of the feature map times the input image, which is fed already resized in numpy. Boolean masks
are counted as floats: a cast to int64 made a count ten times slower.

NaN, Inf and values beyond fp16 range are not counted in the graph: they show in the sums (not
finite) or in the extremes (beyond 65504), and a sub-batch where they do is measured again from the
full values in numpy (runner.py), which keeps them out of the moments exactly as the eager back end
does. A healthy model never pays for that; a diverged one pays one more forward per sub-batch.

A value whose rank shape inference cannot tell, or a graph older than opset 13, is exposed whole
and reduced in numpy as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnprobe.probe.graph import LayerGraph
from nnprobe.probe.stats import (
    FP16_MAX,
    BatchStats,
    StatsSpec,
    ValueStats,
    correlation_sums,
    unit_axis,
)

if TYPE_CHECKING:
    import numpy as np
    import onnx

MIN_OPSET = 13
_PREFIX = "nnprobe_reduce"


@dataclass
class ReducedValue:
    """Where one tracked value's reductions are among the session's outputs."""

    index: int  # into LayerGraph.values
    outputs: dict[str, str]  # statistic -> graph output name
    image: str | None = None  # the fed input image (h x w) its correlation is taken against


@dataclass
class ReductionPlan:
    """The augmented model and which outputs hold what: reduced values and whole (numpy) ones."""

    model: onnx.ModelProto
    reduced: list[ReducedValue] = field(default_factory=list)
    whole: list[int] = field(default_factory=list)  # indices exposed whole
    bounds_inputs: dict[str, str] = field(default_factory=dict)  # kind -> input name
    image_inputs: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (h, w)

    @property
    def output_names(self) -> list[str]:
        return [name for r in self.reduced for name in r.outputs.values()]


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 0


def value_shapes(model: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """Each value's shape as shape inference tells it (None for a symbolic or unknown dim)."""
    import onnx as onnx_lib

    try:
        inferred = onnx_lib.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        return {}
    shapes: dict[str, tuple[int | None, ...]] = {}
    g = inferred.graph
    for info in list(g.value_info) + list(g.output) + list(g.input):
        t = info.type.tensor_type
        if not t.HasField("shape"):
            continue
        shapes[info.name] = tuple(
            int(d.dim_value) if d.HasField("dim_value") else None for d in t.shape.dim
        )
    return shapes


class _Builder:
    """Appends nodes, constants and outputs to a graph, in the form the graph's opset wants."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph = graph
        self.opset = opset
        self.serial = 0
        self._ones: dict[str, str] = {}

    def name(self, hint: str) -> str:
        self.serial += 1
        return f"{_PREFIX}/{hint}_{self.serial}"

    def const(
        self, values: Sequence[int] | Sequence[float], dtype: str, scalar: bool = False
    ) -> str:
        import numpy as np
        from onnx import numpy_helper

        array = np.array(values, dtype=dtype)
        if scalar:
            array = array.reshape(())
        name = self.name("const")
        self.graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op.lower())
        self.graph.node.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def reduce(self, op: str, x: str, axes: Sequence[int] | None, keepdims: int = 0) -> str:
        """`op` over `axes` (None: every axis); axes are an input from opset 18 (13 for Sum)."""
        if axes is None:
            return self.node(op, [x], keepdims=keepdims)
        if op == "ReduceSum" or self.opset >= 18:
            return self.node(op, [x, self.const(list(axes), "int64")], keepdims=keepdims)
        return self.node(op, [x], axes=list(axes), keepdims=keepdims)

    def count(self, op: str, x: str, bound: str) -> str:
        """How many entries of each sample satisfy `x op bound` (float per-sample counts: a cast
        to float sums ten times faster than one to int64, and stays exact below 2**24 entries a
        sample)."""
        from onnx import TensorProto

        mask = self.node("Cast", [self.node(op, [x, bound])], to=TensorProto.FLOAT)
        per_sample = self.node("Reshape", [mask, self.const([0, -1], "int64")])
        return self.reduce("ReduceSum", per_sample, [1])

    def per_channel(self, op: str, x: str, rank: int, samples_of: str = "") -> str:
        """`op` per channel (axis 1) of an (N, C, ...) value, in two steps that ONNX Runtime
        1.32 runs fast on 2 threads (bench/RESULTS-probe.md): the rest of each sample's channel
        (the last axis of the (N, C, rest) view), then the samples of the (N, C) result. Axes
        (0, 2) of the view at once took 6x as long for an LSTM's (32, 1, 16384) (444 vs 72 us)
        and an (N, C, 1) view 14x (108 vs 7.6 us for 64x512); axis 0 of an (N, C) sums fastest
        as a (1, N) row of ones times it (6 us vs 70 us for ReduceSum on 2 threads).
        `samples_of`: a value with the same N whose row of ones can be reused."""
        samples_of = samples_of or x
        if rank > 2:
            view = self.node("Reshape", [x, self.const([0, 0, -1], "int64")])
            x = self.reduce(op, view, [2])
        if op == "ReduceSum":
            return self.node("MatMul", [self.ones_row(samples_of), x])
        return self.reduce(op, x, [0])

    def ones_row(self, x: str) -> str:
        """A (1, N) row of ones for the N samples of `x`, made once per value."""
        import numpy as np
        from onnx import numpy_helper

        if x in self._ones:
            return self._ones[x]
        samples = self.node("Gather", [self.node("Shape", [x]), self.const([0], "int64")])
        shape = self.node("Concat", [self.const([1], "int64"), samples], axis=0)
        one = numpy_helper.from_array(np.ones(1, dtype=np.float32))
        self._ones[x] = self.node("ConstantOfShape", [shape], value=one)
        return self._ones[x]

    def output(self, name: str) -> str:
        import onnx as onnx_lib

        self.graph.output.append(onnx_lib.ValueInfoProto(name=name))
        return name


def plan_reductions(model: onnx.ModelProto, graph: LayerGraph) -> ReductionPlan:
    """A copy of `model` whose outputs are the reductions of every tracked value (or the value
    itself, where it cannot be reduced in the graph)."""
    import onnx as onnx_lib
    from onnx import TensorProto

    augmented = onnx_lib.ModelProto()
    augmented.CopyFrom(model)
    plan = ReductionPlan(augmented)
    opset = default_opset(model)
    if opset < MIN_OPSET:
        plan.whole = list(range(len(graph.values)))
        _expose_whole(plan, graph)
        return plan
    shapes = value_shapes(_without_weights(model))
    input_shape = shapes.get(graph.input_name)
    b = _Builder(augmented.graph, opset)
    zero = b.const([0.0], "float32", scalar=True)
    for i, value in enumerate(graph.values):
        shape = shapes.get(value.name)
        stats = ValueStats(
            value.kind, unit_axis=value.unit_axis, correlate_input=value.correlate_input
        )
        if shape is None or len(shape) < 2:
            plan.whole.append(i)
            continue
        x = value.name
        out: dict[str, str] = {"shape": b.node("Shape", [x])}
        # Sums and sums of squares per group of the (N, C, rest) view: one read each, no
        # centred copy; each group's M2 is merged with Chan's update in float64.
        rank = len(shape)
        out["sum"] = b.per_channel("ReduceSum", x, rank)
        # ReduceSumSquare is not vectorised in ONNX Runtime 1.32: Mul then ReduceSum is 4x faster.
        out["sum_sq"] = b.per_channel("ReduceSum", b.node("Mul", [x, x]), rank, x)
        out["min"] = b.reduce("ReduceMin", x, None)
        if stats.per_unit:
            axis = unit_axis(value.unit_axis, rank)
            if axis == 1:
                out["unit_max"] = b.per_channel("ReduceMax", x, rank)
            else:
                # The middle axes first, then the samples: 4x faster in ONNX Runtime than the
                # samples axis of the (-1, units) view (63 vs 253 us for 64x32x128).
                middle = b.reduce("ReduceMax", x, list(range(1, rank - 1)))
                out["unit_max"] = b.reduce("ReduceMax", middle, [0])
            out["positive"] = b.count("Greater", x, zero)
        else:
            out["max"] = b.reduce("ReduceMax", x, None)
        if stats.bounds is not None:
            bounds = plan.bounds_inputs.get(value.kind)
            if bounds is None:
                bounds = f"{_PREFIX}/bounds/{value.kind}"
                augmented.graph.input.append(
                    onnx_lib.helper.make_tensor_value_info(bounds, TensorProto.FLOAT, [4])
                )
                plan.bounds_inputs[value.kind] = bounds
            low, high, a_low, a_high = (
                b.node("Gather", [bounds, b.const([k], "int64", scalar=True)]) for k in range(4)
            )
            # Entries <= low are those not > low (NaN never reaches here: see the docstring).
            out["above_low"] = b.count("Greater", x, low)
            out["below_high"] = b.count("Less", x, high)
            out["above_a_low"] = b.count("Greater", x, a_low)
            out["below_a_high"] = b.count("Less", x, a_high)
        reduced = ReducedValue(i, out)
        if stats.correlate_input:
            image = _image_input(plan, augmented, shape, input_shape)
            if image is not None:
                reduced.image = image
                out["sum_ab"] = b.per_channel("ReduceSum", b.node("Mul", [x, image]), rank, x)
        for name in out.values():
            b.output(name)
        plan.reduced.append(reduced)
    _expose_whole(plan, graph)
    return plan


def _image_input(
    plan: ReductionPlan,
    model: onnx.ModelProto,
    fmap: tuple[int | None, ...],
    image: tuple[int | None, ...] | None,
) -> str | None:
    """The graph input that takes the channel-mean input image at the feature map's size."""
    import onnx as onnx_lib
    from onnx import TensorProto

    if len(fmap) != 4 or image is None or len(image) != 4:
        return None
    h, w = fmap[2], fmap[3]
    if h is None or w is None:
        return None
    name = f"{_PREFIX}/image/{h}x{w}"
    if name not in plan.image_inputs:
        plan.image_inputs[name] = (h, w)
        model.graph.input.append(
            onnx_lib.helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 1, h, w])
        )
    return name


def _expose_whole(plan: ReductionPlan, graph: LayerGraph) -> None:
    import onnx as onnx_lib

    present = {o.name for o in plan.model.graph.output}
    for i in plan.whole:
        name = graph.values[i].name
        if name not in present:
            plan.model.graph.output.append(onnx_lib.ValueInfoProto(name=name))
            present.add(name)


def _without_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    """A shallow stand-in for shape inference: large float initializers keep dims, not data."""
    import onnx as onnx_lib

    light = onnx_lib.ModelProto()
    light.CopyFrom(model)
    for t in light.graph.initializer:
        size = 1
        for d in t.dims:
            size *= d
        if size > 64 and t.data_type == onnx_lib.TensorProto.FLOAT:
            name, dims = t.name, list(t.dims)
            t.Clear()
            t.name, t.data_type = name, onnx_lib.TensorProto.FLOAT
            t.dims.extend(dims)
            t.raw_data = b""
    return light


def batch_from_outputs(got: dict[str, Any], image: Any = None) -> BatchStats | None:
    """The BatchStats of one value from its reduction outputs, or None when the sub-batch must be
    measured from the full value (non-finite entries, or entries beyond fp16 range)."""
    import math

    import numpy as np

    shape = [int(d) for d in np.asarray(got["shape"]).ravel()]
    n = int(np.prod(shape, dtype=np.int64))
    if n == 0:
        return BatchStats(samples=shape[0] if shape else 1)
    # Per-channel sums come as a (1, C) row (a row of ones times the samples).
    sums = np.asarray(got["sum"], dtype=np.float64).ravel()
    squares = np.asarray(got["sum_sq"], dtype=np.float64).ravel()
    lo = float(got["min"])
    unit_max: np.ndarray[Any, Any] | None = None
    if "unit_max" in got:
        unit_max = np.asarray(got["unit_max"], dtype=np.float64)
        hi = float(unit_max.max()) if unit_max.size else -math.inf
    else:
        hi = float(got["max"])
    total = float(sums.sum())
    if not (math.isfinite(total) and math.isfinite(lo) and math.isfinite(hi)):
        return None
    if hi > FP16_MAX or lo < -FP16_MAX or not np.isfinite(squares).all():
        return None
    per_group = n / sums.size
    group_means = sums / per_group
    mean = total / n
    group_m2 = np.maximum(squares - sums * group_means, 0.0)
    m2 = float(group_m2.sum() + per_group * np.square(group_means - mean).sum())
    batch = BatchStats(samples=shape[0], n=n, mean=mean, m2=m2, min=lo, max=hi, unit_max=unit_max)

    def counted(key: str) -> int:
        return int(np.rint(np.asarray(got[key], dtype=np.float64)).sum())

    if "positive" in got:
        batch.positive = counted("positive")
    if "above_low" in got:
        batch.beyond = 2 * n - counted("above_low") - counted("below_high")
        batch.saturated = 2 * n - counted("above_a_low") - counted("below_a_high")
    if "sum_ab" in got and image is not None:
        batch.corr = correlation_sums(image, sums, squares, np.asarray(got["sum_ab"]).ravel())
    return batch


def bounds_feed(plan: ReductionPlan, spec: StatsSpec) -> dict[str, np.ndarray[Any, Any]]:
    import numpy as np

    feed = {}
    for kind, name in plan.bounds_inputs.items():
        bounds = spec.saturation_bounds(kind)
        assert bounds is not None
        feed[name] = np.array(bounds, dtype=np.float32)
    return feed
