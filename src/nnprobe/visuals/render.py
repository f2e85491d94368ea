"""Drawing with matplotlib (Agg, no window): grids of small images with captions, a labelled
scatter, and a heat map over an image. Pictures are PNG bytes; callers never touch matplotlib."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = "pip install 'nnprobe[viz]'"
MARK = "#d62728"


def _plt() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"pictures need matplotlib: {INSTALL_HINT}") from exc
    return plt


def _png(fig: Any) -> bytes:
    plt = _plt()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def displayable(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) -> (H, W) or (H, W, 3) scaled to [0, 1] (RGB when C is 3)."""
    import numpy as np

    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3:
        a = np.transpose(a, (1, 2, 0)) if a.shape[0] == 3 else a[0]
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def grid(
    tiles: Sequence[np.ndarray],
    captions: Sequence[str],
    title: str,
    *,
    marked: Sequence[bool] | None = None,
    boxes: Sequence[tuple[int, int, int, int] | None] | None = None,
    cmap: str = "gray",
    columns: int | None = None,
) -> bytes:
    """Tiles in a grid, each with its caption under it; `marked` tiles get a red frame, `boxes`
    (top, left, bottom, right, inclusive) are outlined in red."""
    plt = _plt()
    from matplotlib.patches import Rectangle

    n = max(1, len(tiles))
    cols = columns or min(n, max(4, math.ceil(math.sqrt(n * 1.5))))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.5 * cols, 1.65 * rows + 0.5), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(tiles):
            ax.axis("off")
            continue
        tile = tiles[i]
        ax.imshow(tile, cmap=None if tile.ndim == 3 else cmap, interpolation="nearest")
        ax.set_xlabel(captions[i], fontsize=7)
        bad = bool(marked and marked[i])
        for spine in ax.spines.values():
            spine.set_color(MARK if bad else "#999999")
            spine.set_linewidth(2.5 if bad else 0.5)
        box = boxes[i] if boxes else None
        if box is not None:
            top, left, bottom, right = box
            ax.add_patch(
                Rectangle(
                    (left - 0.5, top - 0.5),
                    right - left + 1,
                    bottom - top + 1,
                    fill=False,
                    edgecolor=MARK,
                    linewidth=1.8,
                )
            )
    fig.suptitle(title, fontsize=9)
    return _png(fig)


def scatter(points: np.ndarray, colours: Sequence[Any], title: str, subtitle: str) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    classes = sorted({c for c in colours}, key=str)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, cls in enumerate(classes):
        idx = [j for j, c in enumerate(colours) if c == cls]
        ax.scatter(points[idx, 0], points[idx, 1], s=7, color=cmap(i % cmap.N), label=str(cls))
    if 1 < len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\n{subtitle}", fontsize=9)
    return _png(fig)


def heat(image: np.ndarray, heat_map: np.ndarray, title: str, caption: str) -> bytes:
    """The input beside the heat map, and the heat map over the input."""
    plt = _plt()
    shown = displayable(image)
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.2))
    axes[0].imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest")
    axes[0].set_title("input", fontsize=8)
    import numpy as np

    bound = float(np.abs(heat_map).max()) or 1.0
    scale = {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
    im = axes[1].imshow(heat_map, interpolation="nearest", **scale)
    axes[1].set_title("probability drop (red: the class needs it)", fontsize=8)
    fig.colorbar(im, ax=axes[1], fraction=0.046)
    axes[2].imshow(shown, cmap=None if shown.ndim == 3 else "gray", interpolation="nearest")
    axes[2].imshow(heat_map, alpha=0.55, interpolation="bilinear", **scale)
    axes[2].set_title("overlay", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title}\n{caption}", fontsize=9)
    return _png(fig)
