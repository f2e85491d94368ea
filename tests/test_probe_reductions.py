"""Statistics reduced inside the ONNX graph equal the same statistics computed in numpy from the
whole values, for every tracked value of every zoo model, including the awkward cases: saturating
activations, a large offset (sums of squares cancel), NaN/Inf and fp16 overflow mid-probe."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from zoo import EXPORTABLE, MLP, SmallCNN, ZooEntry

from nnprobe.inspectors.activation_context import ValueSummary
from nnprobe.probe import ProbeOptions, probe_module
from nnprobe.probe.export import bind_weights, export_module
from nnprobe.probe.graph import LayerGraph, build_graph
from nnprobe.probe.inputs import ProbeInputs
from nnprobe.probe.modules import module_kinds
from nnprobe.probe.runner import ProbeSession, make_session, run_probe, sub_batches
from nnprobe.probe.stats import StatsSpec, ValueStats


class Offset(nn.Module):
    """A layer whose outputs sit far from zero (mean ~50, std ~1): naive sums of squares cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.act = nn.Sigmoid()
        self.out = nn.Linear(16, 4)
        with torch.no_grad():
            self.fc.bias.fill_(50.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act(self.fc(x) - 50.0) * 2)


class Saturating(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.act1 = nn.Tanh()
        self.fc2 = nn.Linear(32, 32)
        self.act2 = nn.Sigmoid()
        self.out = nn.Linear(32, 4)
        with torch.no_grad():
            self.fc1.weight.mul_(8.0)
            self.fc2.weight.mul_(12.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.act2(self.fc2(self.act1(self.fc1(x)))))


CASES = [
    *EXPORTABLE,
    ZooEntry("offset", Offset, (16,)),
    ZooEntry("saturating", Saturating, (16,)),
    ZooEntry("cnn_3ch", lambda: nn.Sequential(nn.Conv2d(3, 6, 3, 2), nn.ReLU()), (3, 12, 12)),
    ZooEntry("gelu_mlp", lambda: MLP(act=nn.GELU), (16,)),
]


def _session(entry: ZooEntry) -> tuple[nn.Module, ProbeSession, LayerGraph]:
    model = entry.build()
    exported = export_module(model, entry.inputs(3), exporters=("torchscript",), use_cache=False)
    bound = bind_weights(exported, model)
    graph = build_graph(bound, exported.module_names, module_kinds(model))
    return model, make_session(bound, graph), graph


def _numpy_reference(
    session: ProbeSession, graph: LayerGraph, probe: ProbeInputs, sub_batch: int
) -> list[ValueSummary]:
    """The statistics of the whole values, fetched from ONNX Runtime and reduced in numpy."""
    stats = [
        ValueStats(
            v.kind, unit_axis=v.unit_axis, spec=StatsSpec(), correlate_input=v.correlate_input
        )
        for v in graph.values
    ]
    for start, end in sub_batches(probe.count, sub_batch):
        feed = np.ascontiguousarray(probe.x[start:end], dtype=np.float32)
        outputs = session.whole().run(graph.output_names, {graph.input_name: feed})
        for value, s, array in zip(graph.values, stats, outputs, strict=True):
            s.update(np.asarray(array), feed if value.correlate_input and feed.ndim == 4 else None)
    return [
        s.summary(name=v.name, module=v.module, op=v.op, order=v.order)
        for v, s in zip(graph.values, stats, strict=True)
    ]


def _close(a: float | None, b: float | None, rel: float = 1e-4, abs_: float = 1e-5) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == pytest.approx(b, rel=rel, abs=abs_)


def assert_same_statistics(got: ValueSummary, want: ValueSummary, what: str) -> None:
    name = f"{what}: {got.name} ({got.kind})"
    assert (got.count, got.nan, got.inf, got.beyond_fp16) == (
        want.count,
        want.nan,
        want.inf,
        want.beyond_fp16,
    ), name
    assert _close(got.mean, want.mean, abs_=1e-5 * (abs(want.std) + 1e-3)), name
    assert _close(got.std, want.std, rel=1e-3), name
    assert _close(got.min, want.min) and _close(got.max, want.max), name
    assert got.units == want.units and got.dead_units == want.dead_units, name
    if want.unit_max is not None:
        assert got.unit_max == pytest.approx(want.unit_max, rel=1e-4, abs=1e-5), name
    assert _close(got.active_fraction, want.active_fraction, abs_=1e-9), name
    assert _close(got.saturated_fraction, want.saturated_fraction, abs_=2e-3), name
    assert _close(got.preactivation_beyond, want.preactivation_beyond, abs_=2e-3), name
    if want.input_correlation is None:
        assert got.input_correlation is None, name
    else:
        assert got.input_correlation == pytest.approx(want.input_correlation, abs=1e-3), name


@pytest.mark.parametrize("entry", CASES, ids=lambda e: e.name)
def test_in_graph_statistics_equal_numpy_statistics_of_every_value(entry: ZooEntry) -> None:
    _, session, graph = _session(entry)
    assert not session.plan.whole, "every value of these graphs is reduced in the graph"
    probe = ProbeInputs.from_arrays(entry.inputs(45).numpy())
    got = run_probe(session, graph, probe, sub_batch=16)
    want = _numpy_reference(session, graph, probe, 16)
    assert [v.name for v in got] == [v.name for v in want]
    for a, b in zip(got, want, strict=True):
        assert_same_statistics(a, b, entry.name)
    if entry.name == "saturating":
        assert any(v.preactivation_beyond and v.preactivation_beyond > 0.3 for v in got)
    if entry.name in ("small_cnn", "cnn_3ch"):
        assert got[0].input_correlation is not None


@pytest.mark.parametrize("entry", [e for e in CASES if e.name in ("small_cnn", "offset")])
def test_in_graph_statistics_equal_eager_hook_statistics(entry: ZooEntry, tmp_path: Path) -> None:
    model = entry.build()
    x = entry.inputs(40).numpy()
    options = ProbeOptions(cache_dir=tmp_path, sub_batch=16)
    in_graph = probe_module(model, x, display_path="m.pt", options=options)
    eager = probe_module(
        model, x, display_path="m.pt", options=ProbeOptions(force_eager=True, sub_batch=16)
    )
    assert in_graph.backend == "onnxruntime" and eager.backend == "eager"
    by_module = {(v.module, v.kind): v for v in in_graph.values}
    for e in eager.values:
        assert_same_statistics(by_module[(e.module, e.kind)], e, "eager")


def test_non_finite_and_fp16_overflow_mid_probe_are_counted_exactly() -> None:
    entry = ZooEntry("cnn", SmallCNN, (1, 8, 8))
    _, session, graph = _session(entry)
    x = entry.inputs(48).numpy()
    x[20, 0, 3, 3] = np.nan  # second sub-batch
    x[40, 0, 1, 1] = 1e6  # beyond fp16 range after the first conv
    x[41, 0, 2, 2] = -np.inf
    probe = ProbeInputs.from_arrays(x)
    got = run_probe(session, graph, probe, sub_batch=16)
    want = _numpy_reference(session, graph, probe, 16)
    assert got[0].nan > 0 and got[0].beyond_fp16 > 0
    for a, b in zip(got, want, strict=True):
        assert_same_statistics(a, b, "non-finite")


_PEAK_SCRIPT = """
import sys, tempfile, pathlib
from torch import nn
sys.path.insert(0, {tests!r})
from zoo import ZooEntry
from nnprobe.probe import ProbeOptions, probe_module
from nnprobe.probe.memory import PeakMemory
layers = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU())
entry = ZooEntry("cnn", lambda: layers, (3, 32, 32))
model = entry.build()
options = ProbeOptions(cache_dir=pathlib.Path(tempfile.mkdtemp()), sub_batch=32)
x = entry.inputs({count}).numpy()
probe_module(model, x[:32], display_path="m", options=options)  # export, session, allocator warm
with PeakMemory() as memory:
    probe_module(model, x, display_path="m", options=options)
print(memory.delta if memory.exact else -1)
"""


def _peak_in_fresh_process(count: int) -> int:
    script = _PEAK_SCRIPT.format(tests=str(Path(__file__).parent), count=count)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_probe_memory_is_bounded_by_the_sub_batch() -> None:
    """A fresh process per size: in one process the allocator's reuse of freed memory hides or
    invents growth. The first few sub-batches of a new session raise the allocator's plateau,
    so both sizes run several; 2048 inputs hold 32 MiB of activations per value."""
    small, large = _peak_in_fresh_process(256), _peak_in_fresh_process(2048)
    if small < 0 or large < 0:
        pytest.skip("this platform cannot measure the peak of a block")
    assert large < small + 8 * 2**20, (small / 2**20, large / 2**20)


SECOND_CHECKPOINT = [e for e in EXPORTABLE if e.name in ("small_cnn", "mlp", "lstm", "transformer")]


@pytest.mark.parametrize("entry", SECOND_CHECKPOINT, ids=lambda e: e.name)
def test_second_checkpoint_reuses_the_architecture_with_its_own_weights(
    entry: ZooEntry, tmp_path: Path
) -> None:
    """A convolutional graph gets a session per checkpoint with its weights bound; any other
    graph one session per architecture with the weights fed as inputs: either way the second
    checkpoint's statistics are its own (eager hooks on it agree), not the first's."""
    from nnprobe.probe import runner

    first, second = entry.build(seed=0), entry.build(seed=1)
    x = entry.inputs(24).numpy()
    options = ProbeOptions(cache_dir=tmp_path, sub_batch=16)
    a = probe_module(first, x, display_path="a.pt", options=options)
    b = probe_module(second, x, display_path="b.pt", options=options)
    assert b.cache_hit and b.backend == "onnxruntime"
    key = export_module(second, torch.from_numpy(x[:3]), cache_dir=tmp_path).key
    [arch] = [v for k, v in runner._ARCHITECTURES.items() if k[0] == key]
    assert (arch.fed is None) == (entry.name == "small_cnn"), entry.name
    assert len(arch._shared) == (0 if arch.fed is None else 1)
    eager = probe_module(
        second, x, display_path="b.pt", options=ProbeOptions(force_eager=True, sub_batch=16)
    )
    by_module = {(v.module, v.kind): v for v in b.values}
    for e in eager.values:
        assert_same_statistics(by_module[(e.module, e.kind)], e, "second checkpoint")
    assert [v.std for v in a.values] != pytest.approx([v.std for v in b.values], rel=1e-3)


def test_graph_older_than_opset_13_is_measured_whole(tmp_path: Path) -> None:
    import io

    import onnx

    from nnprobe.probe import probe_onnx

    entry = ZooEntry("cnn", SmallCNN, (1, 8, 8))
    model = entry.build()
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (entry.inputs(2),),
        buffer,
        input_names=["input"],
        dynamic_axes={"input": {0: "batch"}},
        opset_version=11,
        do_constant_folding=False,
        dynamo=False,
    )
    old = onnx.load_from_string(buffer.getvalue())
    graph = build_graph(old)
    session = make_session(old, graph)
    assert session.plan.whole == list(range(len(graph.values))) and not session.plan.reduced
    x = entry.inputs(20).numpy()
    got = probe_onnx(old, x, display_path="old.onnx")
    eager = probe_module(model, x, display_path="m", options=ProbeOptions(force_eager=True))
    by_module = {(v.module, v.kind): v for v in got.values}
    for e in eager.values:
        assert_same_statistics(by_module[(e.module, e.kind)], e, "opset 11")


@pytest.mark.parametrize(
    "entry", [e for e in EXPORTABLE if e.name in ("small_cnn", "mlp")], ids=lambda e: e.name
)
def test_non_finite_through_a_reused_architecture_equals_eager(
    entry: ZooEntry, tmp_path: Path
) -> None:
    """Bound weights (the CNN) and weights fed to a shared session (the MLP) alike."""
    model = entry.build()
    x = entry.inputs(40).numpy()
    x.reshape(len(x), -1)[25, 5] = np.nan
    options = ProbeOptions(cache_dir=tmp_path, sub_batch=16)
    probe_module(model, x[:16], display_path="m.pt", options=options)  # the architecture, cached
    got = probe_module(model, x, display_path="m.pt", options=options)
    eager = probe_module(
        model, x, display_path="m.pt", options=ProbeOptions(force_eager=True, sub_batch=16)
    )
    assert got.cache_hit and got.values[0].nan > 0
    by_module = {(v.module, v.kind): v for v in got.values}
    for e in eager.values:
        assert_same_statistics(by_module[(e.module, e.kind)], e, "non-finite, reused")
