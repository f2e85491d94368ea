"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey patch over the input and record how
much the true class's probability drops; all occluded copies go through ONNX Runtime as one batch.

"Grey" is the probe set's per-channel mean, so the patch carries no signal in whatever scale the
model was trained on. Each pixel's value is the mean drop over the patches that covered it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from nnprobe.visuals.model_run import ModelRun


@dataclass
class OcclusionMap:
    heat: np.ndarray  # (H, W) mean drop in the target class's probability
    target: int
    base_probability: float
    patch: int
    stride: int
    copies: int


def default_patch(height: int, width: int) -> tuple[int, int]:
    """(patch, stride): a quarter of the smaller side (at least 2), stride half the patch."""
    patch = max(2, min(height, width) // 4)
    return patch, max(1, patch // 2)


def occluded_copies(
    image: np.ndarray, grey: np.ndarray, patch: int, stride: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(copies (P, C, H, W), top-left corners): one copy per patch position."""
    import numpy as np

    _, height, width = image.shape
    rows = list(range(0, max(1, height - patch + 1), stride))
    cols = list(range(0, max(1, width - patch + 1), stride))
    if rows[-1] != height - patch and height > patch:
        rows.append(height - patch)
    if cols[-1] != width - patch and width > patch:
        cols.append(width - patch)
    corners = [(r, c) for r in rows for c in cols]
    copies = np.repeat(image[None], len(corners), axis=0)
    for i, (r, c) in enumerate(corners):
        copies[i, :, r : r + patch, c : c + patch] = grey[:, None, None]
    return copies, corners


def heat_from_drops(
    drops: np.ndarray, corners: list[tuple[int, int]], shape: tuple[int, int], patch: int
) -> np.ndarray:
    import numpy as np

    total = np.zeros(shape)
    count = np.zeros(shape)
    for drop, (r, c) in zip(drops, corners, strict=True):
        total[r : r + patch, c : c + patch] += drop
        count[r : r + patch, c : c + patch] += 1
    return np.asarray(total / np.maximum(count, 1))


def occlusion_map(
    run: ModelRun,
    index: int,
    *,
    target: int | None = None,
    patch: int | None = None,
    stride: int | None = None,
) -> OcclusionMap:
    import numpy as np

    from nnprobe.probe.jobs import JobError
    from nnprobe.visuals.maps import image_inputs

    x = image_inputs(run)
    if not 0 <= index < len(x):
        raise JobError("NP901", f"--input {index} is outside the probe set (0..{len(x) - 1})")
    image = x[index].astype(np.float32)
    default_size, default_stride = default_patch(*image.shape[1:])
    patch = patch or default_size
    stride = stride or (default_stride if patch == default_size else max(1, patch // 2))
    grey = x.mean(axis=(0, 2, 3)).astype(np.float32)
    copies, corners = occluded_copies(image, grey, patch, stride)
    probs = run.probabilities(np.concatenate([image[None], copies]))
    if target is None:
        labels = run.inputs.y
        target = int(labels[index]) if labels is not None else int(probs[0].argmax())
    drops = probs[0, target] - probs[1:, target]
    heat = heat_from_drops(drops, corners, image.shape[1:], patch)
    return OcclusionMap(heat, target, float(probs[0, target]), patch, stride, len(copies))
