"""Conv filters as pictures: one tile per output channel, each normalised on its own so a small
filter is as visible as a large one, RGB when the layer reads 3 channels (else the channels are
averaged), and under each tile its NP204 roughness (weight_stats.roughness: ~1 is white noise,
near 0 smooth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnprobe.probe.jobs import JobError

if TYPE_CHECKING:
    import numpy as np
    import onnx

MAX_FILTERS = 64


@dataclass
class FilterGrid:
    layer: str
    tiles: list[np.ndarray]
    scores: list[float]  # per filter
    pooled: float  # the layer's score as NP204 computes it
    shape: tuple[int, ...]


def conv_weights(model: onnx.ModelProto) -> list[tuple[str, np.ndarray]]:
    """(module path, weight) of every 2-D Conv whose weight is an initializer, in graph order."""
    from onnx import numpy_helper

    from nnprobe.probe.graph import _param_module

    initializers = {t.name: t for t in model.graph.initializer}
    out: list[tuple[str, np.ndarray]] = []
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]])
        if weight.ndim == 4:
            out.append((_param_module(node.input[1]) or node.name or node.input[1], weight))
    return out


def filter_grid(model: onnx.ModelProto, layer: str | None = None) -> FilterGrid:
    import numpy as np

    from nnprobe.probe.weight_stats import roughness

    convs = conv_weights(model)
    if not convs:
        raise JobError("NP901", "the model has no 2-D convolution to draw filters of")
    if layer:
        chosen = [c for c in convs if c[0] == layer or c[0].startswith(layer + ".")]
        if not chosen:
            names = ", ".join(name for name, _ in convs)
            raise JobError("NP901", f"no conv layer {layer!r}; conv layers: {names}")
    else:
        chosen = convs
    name, weight = chosen[0]
    w = weight.astype(np.float64)
    tiles, scores = [], []
    for f in w[:MAX_FILTERS]:
        tile = np.transpose(f, (1, 2, 0)) if f.shape[0] == 3 else f.mean(axis=0)
        lo, hi = tile.min(), tile.max()
        tiles.append((tile - lo) / (hi - lo) if hi > lo else np.zeros_like(tile))
        scores.append(roughness(f[None])[0])
    return FilterGrid(name, tiles, scores, roughness(w)[0], tuple(weight.shape))
