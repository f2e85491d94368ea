"""ONNX values map back to the module paths that made them, for every exporter dialect, and the ONNX
Runtime probe measures what the eager hooks measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn
from zoo import EXPORTABLE, SmallCNN, ZooEntry

from nnprobe.inspectors.activation_context import ValueSummary
from nnprobe.probe import ProbeOptions, probe_module
from nnprobe.probe.export import bind_weights, export_module
from nnprobe.probe.graph import build_graph, namespace_module, scope_module, unqualified
from nnprobe.probe.inputs import ProbeInputs
from nnprobe.probe.modules import module_kinds
from nnprobe.probe.runner import OPT_LEVELS, make_session, run_probe


def test_unqualified_names_as_the_exporter_writes_them() -> None:
    assert unqualified("features.2.conv") == "conv"
    assert unqualified("features.2") == "features.2"
    assert unqualified("blocks.0.1") == "blocks.0.1"
    assert unqualified("0.1") == "0.1"


@pytest.mark.parametrize(
    ("node", "known", "expected"),
    [
        ("/features/features.2/conv/Conv", None, "features.2.conv"),
        (
            "/features/features.2/conv/Conv",
            {"features", "features.2", "features.2.conv"},
            "features.2.conv",
        ),
        ("/blocks.0/blocks.0.1/Relu", None, "blocks.0.1"),
        ("/0/0.1/Relu", {"0", "0.1"}, "0.1"),
        ("/act_1/Relu", {"act", "fc"}, "act"),
        ("/layer_1/Gemm", {"layer_1"}, "layer_1"),
        ("/Sigmoid", None, ""),
        ("Identity_0", None, None),
    ],
)
def test_scope_module(node: str, known: set[str] | None, expected: str | None) -> None:
    assert scope_module(node, known) == expected


def test_dynamo_namespace() -> None:
    ns = (
        ": __main__.Net/features: torch.nn.modules.container.Sequential/"
        "features.2: __main__.Block/features.2.conv: torch.nn.modules.conv.Conv2d"
    )
    assert namespace_module(ns) == "features.2.conv"
    assert namespace_module(": __main__.Net/sigmoid: aten.sigmoid.default") == ""


def _graph(entry: ZooEntry, exporter: str = "torchscript"):
    model = entry.build()
    exported = export_module(model, entry.inputs(3), exporters=(exporter,), use_cache=False)
    bound = bind_weights(exported, model)
    return model, bound, build_graph(bound, exported.module_names, module_kinds(model))


@pytest.mark.parametrize("entry", EXPORTABLE, ids=lambda e: e.name)
def test_every_value_maps_to_a_real_module(entry: ZooEntry) -> None:
    model, _, graph = _graph(entry)
    names = {name for name, _ in model.named_modules()}
    assert graph.values
    for value in graph.values:
        assert value.module in names, value
        if value.layer is not None:
            assert value.layer in names


def test_sequential_paths_and_feeding_layers() -> None:
    _, _, graph = _graph(ZooEntry("cnn", SmallCNN, (1, 8, 8)))
    relus = [v for v in graph.values if v.kind == "relu"]
    assert [(v.module, v.layer) for v in relus] == [
        ("features.1", "features.0"),
        ("features.4", "features.2"),
    ]
    norm = next(v for v in graph.values if v.kind == "norm")
    assert norm.module == "features.3" and norm.unit_axis == "channel"
    first = graph.values[0]
    assert first.module == "features.0" and first.correlate_input and first.source is None


def test_nested_and_reused_modules() -> None:
    entries = {e.name: e for e in EXPORTABLE}
    _, _, graph = _graph(entries["resnetish"])
    modules = [v.module for v in graph.values]
    assert "layer1.0.conv1" in modules and "layer1.1.bn2" in modules
    assert modules.count("layer1.1.relu") == 2  # called twice in each block
    _, _, graph = _graph(entries["reused_relu"])
    assert [v.module for v in graph.values if v.kind == "relu"] == ["act", "act"]
    _, _, graph = _graph(entries["transformer"])
    kinds = {(v.module, v.kind) for v in graph.values}
    assert ("encoder.layers.0.linear1", "linear") in kinds
    assert ("encoder.layers.1", "relu") in kinds  # the layer's functional relu
    assert ("encoder.layers.0.norm2", "norm") in kinds


def test_dynamo_export_maps_the_same_modules() -> None:
    entry = ZooEntry("cnn", SmallCNN, (1, 8, 8))
    _, _, script_graph = _graph(entry, "torchscript")
    _, _, dynamo_graph = _graph(entry, "dynamo")
    assert [(v.module, v.kind) for v in dynamo_graph.values] == [
        (v.module, v.kind) for v in script_graph.values
    ]


def _pairs(a: list[ValueSummary], b: list[ValueSummary]):
    """Values of the two back ends matched by (module, kind) and occurrence."""

    def keyed(values: list[ValueSummary]) -> dict[tuple[str, str, int], ValueSummary]:
        seen: dict[tuple[str, str], int] = {}
        out = {}
        for v in sorted(values, key=lambda v: v.order):
            n = seen[(v.module, v.kind)] = seen.get((v.module, v.kind), 0) + 1
            out[(v.module, v.kind, n)] = v
        return out

    ka, kb = keyed(a), keyed(b)
    return [(ka[k], kb[k]) for k in ka if k in kb]


@pytest.mark.parametrize("entry", EXPORTABLE, ids=lambda e: e.name)
def test_onnx_runtime_stats_equal_eager_hook_stats(entry: ZooEntry, tmp_path: Path) -> None:
    model = entry.build()
    x = entry.inputs(40).numpy()
    options = ProbeOptions(cache_dir=tmp_path, sub_batch=16)
    ort_result = probe_module(model, x, display_path="m.pt", options=options)
    eager = probe_module(
        model, x, display_path="m.pt", options=ProbeOptions(force_eager=True, sub_batch=16)
    )
    assert ort_result.backend == "onnxruntime" and eager.backend == "eager"
    pairs = _pairs(list(ort_result.values), list(eager.values))
    hooked = len(eager.values)
    assert len(pairs) == hooked  # everything the hooks saw, ONNX Runtime saw too
    for o, e in pairs:
        assert o.count == e.count, o.name
        assert o.mean == pytest.approx(e.mean, rel=1e-3, abs=1e-4), o.name
        assert o.std == pytest.approx(e.std, rel=1e-3, abs=1e-4), o.name
        assert o.dead_units == e.dead_units, o.name
        if o.active_fraction is not None:
            assert o.active_fraction == pytest.approx(e.active_fraction, abs=1e-3)


@pytest.mark.parametrize("level", OPT_LEVELS)
def test_activations_stay_visible_at_every_optimisation_level(level: str) -> None:
    entry = ZooEntry("cnn", SmallCNN, (1, 8, 8))
    _, bound, graph = _graph(entry)
    probe = ProbeInputs.from_arrays(entry.inputs(20).numpy())
    reference = run_probe(make_session(bound, graph, "disable"), graph, probe)
    measured = run_probe(make_session(bound, graph, level), graph, probe)
    assert [v.name for v in measured] == [v.name for v in reference]
    for a, b in zip(measured, reference, strict=True):
        assert a.std == pytest.approx(b.std, rel=1e-4, abs=1e-6)
        assert a.dead_units == b.dead_units


def test_probe_of_an_onnx_file_needs_no_module(tmp_path: Path) -> None:
    from nnprobe.probe import probe_onnx

    entry = ZooEntry("cnn", SmallCNN, (1, 8, 8))
    model, bound, _ = _graph(entry)
    path = tmp_path / "model.onnx"
    path.write_bytes(bound.SerializeToString())
    result = probe_onnx(path, display_path="model.onnx")
    assert result.synthetic and result.context.input.shape == (1, 8, 8)
    modules = [v.module for v in result.values]
    assert modules[:3] == ["features.0", "features.1", "features.2"]
    x = entry.inputs(10).numpy()
    direct = probe_module(model, x, display_path="m", options=ProbeOptions(use_cache=False))
    from_file = probe_onnx(path, x, display_path="model.onnx")
    assert [round(v.std, 5) for v in from_file.values] == [round(v.std, 5) for v in direct.values]
    assert np.isfinite([v.std for v in from_file.values]).all()


def test_sub_batch_size_does_not_change_the_numbers(tmp_path: Path) -> None:
    entry = ZooEntry("cnn", SmallCNN, (1, 8, 8))
    model = entry.build()
    x = entry.inputs(50).numpy()
    small = ProbeOptions(cache_dir=tmp_path, sub_batch=7)
    large = ProbeOptions(cache_dir=tmp_path, sub_batch=64)
    a = probe_module(model, x, display_path="m", options=small)
    b = probe_module(model, x, display_path="m", options=large)
    for u, v in zip(a.values, b.values, strict=True):
        assert u.std == pytest.approx(v.std, rel=1e-5) and u.dead_units == v.dead_units


def test_module_kinds_from_class_names() -> None:
    kinds = module_kinds(nn.Sequential(nn.Linear(2, 2), nn.GELU(), nn.Flatten()))
    assert kinds == {"0": "linear", "1": "gelu"}
