"""Pictures checked by numbers on a small CNN trained here on digits (and its random init), with
every picture saved under test-output/visuals/ for a person to look at.

UMAP compiles numba code on its first call (20-60 s): the session-scoped `umap_ready` fixture pays
that once, with NUMBA_CACHE_DIR under test-output so a rerun reuses the cache.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from digits_cnn import fresh, images, trained, write_workspace
from digits_models import hidden_features
from torch import nn

from nnprobe.probe.factory import FactorySpec
from nnprobe.probe.weight_stats import roughness
from nnprobe.visuals import jobs, render
from nnprobe.visuals.embedding import LARGE_FROM, UMAP_EPOCHS_LARGE, embed, umap_epochs, warm_umap
from nnprobe.visuals.filters import filter_grid
from nnprobe.visuals.maps import activation_maps, top_inputs
from nnprobe.visuals.model_run import ModelRun, open_run
from nnprobe.visuals.occlusion import occlusion_map
from nnprobe.visuals.receptive import Field, compose, graph_fields

OUT = Path(__file__).resolve().parent.parent / "test-output" / "visuals"


def save(name: str, payload: dict[str, Any]) -> bytes:
    assert "error" not in payload, payload.get("error")
    png = base64.b64decode(payload.get("png") or payload["data"])
    assert png.startswith(b"\x89PNG")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(png)
    return png


def params_for(root: Path, kind: str, **options: Any) -> dict[str, Any]:
    spec = FactorySpec((root / "model.py").resolve(), "DigitsCNN")
    return {
        "kind": kind,
        "checkpoint": str((root / "cnn.pt").resolve()),
        "display": "cnn.pt",
        "factory": spec.to_dict(),
        "probe": {"file": str((root / "probe.npz").resolve())},
        **options,
    }


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    write_workspace(root, trained())
    return root


@pytest.fixture(scope="session")
def random_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("random")
    write_workspace(root, fresh())
    return root


@pytest.fixture(scope="session")
def trained_run(trained_root: Path) -> ModelRun:
    return open_run(params_for(trained_root, "embed"))


@pytest.fixture(scope="session")
def random_run(random_root: Path) -> ModelRun:
    return open_run(params_for(random_root, "embed"))


@pytest.fixture(scope="session")
def umap_ready() -> None:
    cache = OUT.parent / "numba-cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache))
    # The digits (1,797 points) take the exact-neighbour path only: no need to compile pynndescent.
    assert warm_umap(background=False, points=300) == "ready"


# ------------------------------------------------------------------ receptive fields


def test_receptive_field_arithmetic_matches_alexnet() -> None:
    # AlexNet's published receptive fields: conv1 11, pool1 19, conv2 51, pool2 67, conv3 99,
    # conv4 131, conv5 163, pool5 195 (kernel, stride, padding, dilation per layer).
    alexnet = [(11, 4, 0, 1), (3, 2, 0, 1), (5, 1, 2, 1), (3, 2, 0, 1)]
    alexnet += [(3, 1, 1, 1)] * 3 + [(3, 2, 0, 1)]
    sizes = [compose(alexnet[: i + 1]).size[0] for i in range(len(alexnet))]
    assert sizes == [11, 19, 51, 67, 99, 131, 163, 195]
    assert compose(alexnet).jump == (32, 32)
    assert compose([(3, 1, 1, 1), (3, 1, 1, 1)]).size == (5, 5)  # VGG: two 3x3 see 5x5
    assert compose([(3, 1, 2, 2)]).size == (5, 5)  # dilation 2


def test_graph_fields_match_the_gradient_support() -> None:
    """Exported nets with stride, padding, dilation and pooling: the box the graph arithmetic gives
    each unit is exactly where its gradient w.r.t. the input is non-zero."""
    from nnprobe.probe.export import export_module

    torch.manual_seed(0)
    nets = {
        "stride-pad": nn.Sequential(
            nn.Conv2d(1, 2, 5, stride=2, padding=2), nn.Conv2d(2, 2, 3, stride=1, padding=1)
        ),
        "dilated-pool": nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=2, dilation=2), nn.AvgPool2d(2), nn.Conv2d(2, 2, 3)
        ),
    }
    for name, net in nets.items():
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(0.5, 1.0)  # positive everywhere: no accidental zero gradients
        x = torch.rand(3, 1, 21, 21)
        graph = export_module(net, x, use_cache=False).model
        final = graph.graph.output[0].name
        field = graph_fields(graph)[final]
        out = net(x[:1].requires_grad_())
        for i, j in [(0, 0), (out.shape[2] // 2, out.shape[3] // 2), (out.shape[2] - 1, 1)]:
            inp = x[:1].clone().requires_grad_()
            net(inp)[0, 0, i, j].backward()
            rows, cols = np.nonzero(inp.grad[0, 0].numpy())
            truth = (rows.min(), cols.min(), rows.max(), cols.max())
            assert field.box((i, j), (21, 21)) == truth, (name, i, j)


def test_whole_input_field_after_a_dense_layer() -> None:
    assert Field(whole=True).box((3, 3), (8, 8)) == (0, 0, 7, 7)


# ------------------------------------------------------------------ embeddings


@pytest.fixture(scope="session")
def projections(
    trained_run: ModelRun, random_run: ModelRun, umap_ready: None
) -> dict[str, dict[str, Any]]:
    """The penultimate layer of both nets in UMAP and PCA, with their quality numbers."""
    out: dict[str, dict[str, Any]] = {}
    for name, run in (("trained", trained_run), ("random", random_run)):
        value = run.value(None, "penultimate")
        assert value.module == "relu3"
        (features,) = run.run(run.inputs.x, [value.name])
        for method in ("umap", "pca"):
            points, meta = embed(features, run.inputs.y, method)
            assert meta["method"] == method and points.shape == (len(features), 2)
            out[f"{name}-{method}"] = meta
            meta.update(points=len(points), colour="label")
            title = f"{name} digits CNN, relu3 ({method.upper()})"
            png = render.scatter(points, list(run.inputs.y), title, jobs.subtitle(meta))
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / f"embed-{name}-{method}.png").write_bytes(png)
    return out


def test_embedding_trained_beats_random_init(projections: dict[str, dict[str, Any]]) -> None:
    """UMAP separates the trained net's digits (kNN in 2-D >= 0.8). It also clusters a random
    net's features well (random convs keep pixel neighbourhoods, and digits cluster by pixels), so
    the margin training adds shows in the linear view: PCA of the trained layer beats PCA of the
    random one clearly."""
    p = projections
    assert p["trained-umap"]["knn2d"] >= 0.8, p
    assert p["trained-umap"]["knn2d"] >= p["random-umap"]["knn2d"], p
    assert p["trained-pca"]["knn2d"] >= p["random-pca"]["knn2d"] + 0.1, p


def test_umap_is_at_least_as_trustworthy_as_pca(projections: dict[str, dict[str, Any]]) -> None:
    for net in ("trained", "random"):
        umap, pca = projections[f"{net}-umap"], projections[f"{net}-pca"]
        assert umap["trustworthiness"] >= pca["trustworthiness"], (net, umap, pca)


def test_umap_settings_for_larger_sets_keep_the_trustworthiness(umap_ready: None) -> None:
    """Past LARGE_FROM points UMAP runs fewer epochs from the PCA picture (the warm 5k-point
    preview's budget): on 3,000 real 512-d features (below umap-learn's switch to approximate
    neighbours, which the test session does not compile) it must still be at least as
    trustworthy as PCA and separate the digits."""
    features, labels = hidden_features(3000)
    assert features.shape == (3000, 512) and umap_epochs(len(features)) == UMAP_EPOCHS_LARGE
    assert len(features) >= LARGE_FROM
    umap_points, umap = embed(features, labels, "umap")
    _, pca = embed(features, labels, "pca")
    png = render.scatter(
        umap_points,
        list(labels),
        "3,000 digits, 512-d (UMAP)",
        jobs.subtitle({**umap, "points": len(umap_points), "colour": "digit"}),
    )
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "embed-digits-3000-umap.png").write_bytes(png)
    assert umap["trustworthiness"] >= pca["trustworthiness"], (umap, pca)
    assert umap["knn2d"] >= 0.9 and umap["knn2d"] >= pca["knn2d"] + 0.2, (umap, pca)


def test_auto_answers_umap_once_warm(trained_run: ModelRun, umap_ready: None) -> None:
    value = trained_run.value(None, "penultimate")
    (features,) = trained_run.run(trained_run.inputs.x[:200], [value.name])
    _, meta = embed(features, trained_run.inputs.y[:200], "auto")
    assert meta["method"] == "umap" and "pending" not in meta


def test_embedding_payload_and_png(trained_root: Path) -> None:
    payload = jobs.run_picture(params_for(trained_root, "embed", method="pca", png=True))
    save("embed-payload-pca.png", payload)
    x, y = images()
    assert payload["kind"] == "scatter" and len(payload["points"]) == len(x)
    assert payload["labels"] == y.tolist()
    assert payload["meta"]["layer"] == "relu3" and payload["meta"]["colour"] == "label"
    assert 0.5 < payload["meta"]["trustworthiness"] <= 1.0


# ------------------------------------------------------------------ occlusion


def test_occlusion_mass_is_on_the_strokes(trained_run: ModelRun) -> None:
    x, y = images()
    probs = trained_run.probabilities(x[:60])
    correct = [i for i in range(60) if probs[i].argmax() == y[i]][:20]
    border = np.zeros((8, 8), bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    stroke_mass, border_mass = [], []
    for i in correct:
        result = occlusion_map(trained_run, i, patch=2, stride=1)
        assert result.target == y[i] and result.copies == 49
        strokes = x[i, 0] > 0.5
        stroke_mass.append(result.heat[strokes & ~border].mean())
        border_mass.append(result.heat[border & ~strokes].mean())
    assert np.mean(stroke_mass) > 2 * max(np.mean(border_mass), 1e-6), (stroke_mass, border_mass)


def test_occlusion_picture(trained_root: Path) -> None:
    payload = jobs.run_picture(params_for(trained_root, "occlusion", input=0))
    save("occlusion-trained-0.png", payload)
    assert payload["meta"]["target"] == 0 and payload["meta"]["probability"] > 0.5


# ------------------------------------------------------------------ top-k, activations, filters


def test_top_k_inputs_are_the_k_highest_activations(trained_run: ModelRun) -> None:
    x, _ = images()
    with torch.no_grad():
        module = trained_run.module
        maps = module.relu2(module.conv2(module.relu1(module.conv1(torch.from_numpy(x)))))
    for unit in (0, 5, 17):
        found = top_inputs(trained_run, "relu2", unit, k=9)
        brute = maps[:, unit].amax(dim=(1, 2)).numpy()
        kth = np.sort(brute)[-9]
        assert all(brute[i] >= kth - 1e-4 for i in found.indices)
        np.testing.assert_allclose(found.scores, np.sort(brute)[::-1][:9], rtol=1e-4, atol=1e-5)
        for i, box in zip(found.indices, found.boxes, strict=True):
            flat = int(maps[i, unit].argmax())
            r, c = divmod(flat, 8)
            assert box == (max(0, r - 2), max(0, c - 2), min(7, r + 2), min(7, c + 2))


def test_top_picture(trained_root: Path) -> None:
    payload = jobs.run_picture(params_for(trained_root, "top", layer="relu2", unit=5))
    save("top-relu2-unit5.png", payload)
    assert len(payload["meta"]["indices"]) == 9


def test_dead_channels_are_marked(trained_root: Path, tmp_path: Path) -> None:
    model = trained()
    with torch.no_grad():
        model.conv1.bias[3] = -100.0  # channel 3 can never be positive on [0, 1] inputs
    write_workspace(tmp_path, model)
    run = open_run(params_for(tmp_path, "activations"))
    maps = activation_maps(run, "relu1", 0)
    x, _ = images()
    with torch.no_grad():
        truth = model.relu1(model.conv1(torch.from_numpy(x))).amax(dim=(0, 2, 3)) <= 0
    assert maps.dead == truth.tolist() and maps.dead[3]
    save(
        "activations-dead-channel-3.png",
        jobs.run_picture(params_for(tmp_path, "activations", input=0)),
    )


def test_filter_grid_scores_are_np204s(trained_run: ModelRun, random_run: ModelRun) -> None:
    for run in (trained_run, random_run):
        grid = filter_grid(run.model)
        weight = run.module.conv1.weight.detach().numpy()
        assert grid.layer == "conv1" and grid.shape == weight.shape
        assert grid.pooled == pytest.approx(roughness(weight)[0], rel=1e-6)
        assert grid.scores == pytest.approx([roughness(w[None])[0] for w in weight], rel=1e-6)
        assert len(grid.tiles) == 16 and all(t.min() >= 0 and t.max() <= 1 for t in grid.tiles)


def test_filter_pictures(trained_root: Path, random_root: Path) -> None:
    save("filters-trained.png", jobs.run_picture(params_for(trained_root, "filters")))
    save("filters-random.png", jobs.run_picture(params_for(random_root, "filters")))
    second = jobs.run_picture(params_for(trained_root, "filters", layer="conv2"))
    assert second["meta"]["layer"] == "conv2"


def test_unknown_layer_is_a_clear_error(trained_root: Path) -> None:
    out = jobs.run_picture(params_for(trained_root, "activations", layer="nope"))
    assert out["error"]["code"] == "NP901" and "relu1" in out["error"]["message"]
