"""What a layer does with real inputs: the feature maps of one input with the dead channels
(never positive on the whole probe set, the NP301 criterion) marked, and for one unit or channel
the k probe inputs that excite it most, each with the unit's receptive field at its peak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnprobe.probe.jobs import JobError
from nnprobe.visuals.receptive import graph_fields

if TYPE_CHECKING:
    import numpy as np

    from nnprobe.visuals.model_run import ModelRun

MAX_CHANNELS = 64


@dataclass
class ActivationMaps:
    layer: str
    input_index: int
    maps: list[np.ndarray]  # (H, W) per channel of the chosen input
    dead: list[bool]  # never positive on the probe set
    peaks: list[float]  # each channel's max on this input
    probe_count: int


@dataclass
class TopInputs:
    layer: str
    unit: int
    indices: list[int]  # into the probe set, highest activation first
    scores: list[float]
    boxes: list[tuple[int, int, int, int]]  # receptive field at each input's peak position


def image_inputs(run: ModelRun) -> np.ndarray:
    x = run.inputs.x
    if x.ndim != 4:
        raise JobError(
            "NP901", f"this picture needs image inputs (N, C, H, W); the probe has {x.shape}"
        )
    return x


def activation_maps(run: ModelRun, layer: str | None, index: int) -> ActivationMaps:
    import numpy as np

    x = image_inputs(run)
    if not 0 <= index < len(x):
        raise JobError("NP901", f"--input {index} is outside the probe set (0..{len(x) - 1})")
    value = run.value(layer, "first-map")
    (acts,) = run.run(x, [value.name])
    if acts.ndim != 4:
        raise JobError("NP901", f"{value.module} is not a feature map (shape {acts.shape[1:]})")
    dead = (acts.max(axis=(0, 2, 3)) <= 0).tolist()
    one = acts[index, :MAX_CHANNELS]
    peaks = one.reshape(len(one), -1).max(axis=1).tolist()
    return ActivationMaps(
        value.module,
        index,
        [np.asarray(m) for m in one],
        [bool(d) for d in dead[:MAX_CHANNELS]],
        [float(p) for p in peaks],
        len(x),
    )


def unit_scores(acts: np.ndarray, unit: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per input: the unit's activation (its channel's maximum over positions for a feature map),
    and for feature maps the (row, col) where that maximum is."""
    import numpy as np

    if unit < 0 or unit >= acts.shape[1]:
        raise JobError("NP901", f"--unit {unit} is outside the layer's {acts.shape[1]} units")
    channel = acts[:, unit]
    if channel.ndim == 1:
        return channel, None
    flat = channel.reshape(len(channel), -1)
    where = flat.argmax(axis=1)
    positions = np.stack(np.unravel_index(where, channel.shape[1:]), axis=1)
    return flat.max(axis=1), positions


def top_inputs(run: ModelRun, layer: str | None, unit: int, k: int = 9) -> TopInputs:
    import numpy as np

    x = image_inputs(run)
    value = run.value(layer, "first-map")
    (acts,) = run.run(x, [value.name])
    scores, positions = unit_scores(acts, unit)
    order = np.argsort(-scores, kind="stable")[:k]
    field = graph_fields(run.model).get(value.name)
    shape = x.shape[2:]
    boxes = []
    for i in order:
        if field is None or positions is None:
            boxes.append((0, 0, shape[0] - 1, shape[1] - 1))
        else:
            boxes.append(field.box(positions[i].tolist(), shape))
    return TopInputs(
        value.module, unit, [int(i) for i in order], [float(scores[i]) for i in order], boxes
    )
