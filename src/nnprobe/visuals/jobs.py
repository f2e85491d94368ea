"""Picture jobs, as the worker runs them (method `picture`, docs/worker.md): plain data in, a
payload out, the same shapes the language server answers with (server/payloads.py).

    {"kind": "image", "mime": "image/png", "data": <base64>, "title": ..., "meta": {...}}
    {"kind": "scatter", "points": [[x, y], ...], "labels": [...], "title": ..., "meta": {...}}

A scatter also carries the PNG as `png` when the job asks for it (`"png": true`: the CLI, the
report). Failures are `{"error": {"code", "message"}}` like probe jobs.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnprobe.probe.jobs import JobError

if TYPE_CHECKING:
    from nnprobe.visuals.model_run import ModelRun

KINDS = ("embed", "filters", "activations", "top", "occlusion")
MAX_POINTS = 5000


def run_picture(params: dict[str, Any]) -> dict[str, Any]:
    try:
        kind = params.get("kind")
        if kind not in KINDS:
            raise JobError("NP901", f"unknown picture {kind!r} (one of {', '.join(KINDS)})")
        return _BUILDERS[kind](params)
    except JobError as exc:
        return {"error": {"code": exc.code, "message": exc.message}}
    except ImportError as exc:
        return {"error": {"code": "NP901", "message": str(exc)}}
    except MemoryError:
        return {"error": {"code": "NP904", "message": "the picture ran out of memory"}}


def _image(png: bytes, title: str, meta: dict[str, Any]) -> dict[str, Any]:
    data = base64.b64encode(png).decode("ascii")
    return {"kind": "image", "mime": "image/png", "data": data, "title": title, "meta": meta}


def _open(params: dict[str, Any]) -> ModelRun:
    from nnprobe.visuals.model_run import open_run

    return open_run(params)


def _name(params: dict[str, Any]) -> str:
    return str(params.get("display") or params["checkpoint"])


def embed(params: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from nnprobe.visuals import render
    from nnprobe.visuals.embedding import embed as project

    run = _open(params)
    x = run.inputs.x
    keep = np.arange(len(x))
    if len(keep) > MAX_POINTS:
        keep = np.sort(np.random.default_rng(0).choice(len(x), MAX_POINTS, replace=False))
    x = x[keep]
    value = run.value(params.get("layer"), "penultimate")
    features, logits = run.run(x, [value.name, run.output_name])
    labels = run.inputs.y[keep] if run.inputs.y is not None else None
    colour_by = "label" if labels is not None else "predicted class"
    colours = labels if labels is not None else logits.reshape(len(x), -1).argmax(axis=1)
    points, meta = project(features, labels, params.get("method") or "auto")
    meta.update(
        layer=value.module,
        colour=colour_by,
        points=len(points),
        dimensions=int(np.prod(features.shape[1:])),
        measured_on=run.inputs.describe(),
    )
    title = f"{_name(params)}: {value.module} ({meta['method'].upper()})"
    payload: dict[str, Any] = {
        "kind": "scatter",
        "points": [[round(float(a), 4), round(float(b), 4)] for a, b in points],
        "labels": [int(c) if np.issubdtype(type(c), np.integer) else str(c) for c in colours],
        "title": title,
        "meta": meta,
    }
    if params.get("png"):
        png = render.scatter(points, list(colours), title, subtitle(meta))
        payload["png"] = base64.b64encode(png).decode("ascii")
    return payload


def subtitle(meta: dict[str, Any]) -> str:
    """The numbers that say how far to believe an embedding."""
    parts = [f"{meta.get('points', '?')} points coloured by {meta.get('colour', 'label')}"]
    if "trustworthiness" in meta:
        parts.append(f"trustworthiness {meta['trustworthiness']:.3f}")
    if "knn2d" in meta:
        parts.append(f"5-NN accuracy in 2-D {meta['knn2d']:.3f}")
    if meta.get("pending"):
        parts.append(f"{meta['pending'].upper()} still warming up")
    return ", ".join(parts)


def filters(params: dict[str, Any]) -> dict[str, Any]:
    from nnprobe.visuals import render
    from nnprobe.visuals.filters import filter_grid

    run = _open(params)
    grid = filter_grid(run.model, params.get("layer"))
    captions = [f"#{i} r={s:.2f}" for i, s in enumerate(grid.scores)]
    title = (
        f"{_name(params)}: {grid.layer} filters {grid.shape}, NP204 roughness {grid.pooled:.2f} "
        "(1 = white noise, near 0 = smooth)"
    )
    png = render.grid(grid.tiles, captions, title, cmap="gray")
    meta = {"layer": grid.layer, "roughness": grid.pooled, "scores": grid.scores}
    return _image(png, title, meta)


def activations(params: dict[str, Any]) -> dict[str, Any]:
    from nnprobe.visuals import render
    from nnprobe.visuals.maps import activation_maps

    run = _open(params)
    index = int(params.get("input") or 0)
    maps = activation_maps(run, params.get("layer"), index)
    captions = [
        f"#{i} {'DEAD' if d else f'max {p:.2f}'}"
        for i, (d, p) in enumerate(zip(maps.dead, maps.peaks, strict=True))
    ]
    dead = sum(maps.dead)
    title = (
        f"{_name(params)}: {maps.layer} on input {index}; {dead}/{len(maps.dead)} channels dead "
        f"(never positive on {maps.probe_count} probe inputs, red)"
    )
    png = render.grid(maps.maps, captions, title, marked=maps.dead, cmap="viridis")
    meta = {"layer": maps.layer, "input": index, "dead": [i for i, d in enumerate(maps.dead) if d]}
    return _image(png, title, meta)


def top(params: dict[str, Any]) -> dict[str, Any]:
    from nnprobe.visuals import render
    from nnprobe.visuals.maps import top_inputs

    run = _open(params)
    unit = int(params.get("unit") or 0)
    found = top_inputs(run, params.get("layer"), unit, int(params.get("k") or 9))
    x, y = run.inputs.x, run.inputs.y
    tiles = [render.displayable(x[i]) for i in found.indices]
    captions = [
        f"#{i}{f' y={int(y[i])}' if y is not None else ''} a={s:.2f}"
        for i, s in zip(found.indices, found.scores, strict=True)
    ]
    title = (
        f"{_name(params)}: inputs that most excite {found.layer} unit {unit} "
        "(receptive field at the peak in red)"
    )
    png = render.grid(tiles, captions, title, boxes=found.boxes)
    meta = {
        "layer": found.layer,
        "unit": unit,
        "indices": found.indices,
        "scores": found.scores,
        "boxes": [list(b) for b in found.boxes],
    }
    return _image(png, title, meta)


def occlusion(params: dict[str, Any]) -> dict[str, Any]:
    from nnprobe.visuals import render
    from nnprobe.visuals.occlusion import occlusion_map

    run = _open(params)
    index = int(params.get("input") or 0)
    result = occlusion_map(run, index, patch=params.get("patch"), stride=params.get("stride"))
    title = f"{_name(params)}: occlusion sensitivity of input {index}"
    caption = (
        f"class {result.target} at p={result.base_probability:.2f}; {result.patch}x{result.patch} "
        f"grey patch, stride {result.stride}, {result.copies} copies in one ONNX Runtime batch"
    )
    png = render.heat(run.inputs.x[index], result.heat, title, caption)
    meta = {
        "input": index,
        "target": result.target,
        "probability": result.base_probability,
        "patch": result.patch,
        "stride": result.stride,
        "heat": [[round(float(v), 4) for v in row] for row in result.heat],
    }
    return _image(png, title, meta)


_BUILDERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "embed": embed,
    "filters": filters,
    "activations": activations,
    "top": top,
    "occlusion": occlusion,
}
