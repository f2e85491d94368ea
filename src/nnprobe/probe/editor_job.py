"""A whole checkpoint inspection as one worker job, for the language server.

The server never imports torch or numpy, so everything that reads the file runs here, in the worker
it can kill: the weight rules, the model factory and source map, the probe, and the per-module
statistics an editor shows on hover and in code lenses. In and out is plain JSON (docs/worker.md,
method `inspect`); the findings are the CLI's (`inspect_checkpoint`), copies on the training
script included.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnprobe.core import trust
from nnprobe.core.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from nnprobe.probe.loading import Checkpoint
    from nnprobe.probe.runtime import RuntimePlan


def editor_config(params: dict[str, Any]) -> Config:
    """The workspace's config file with the editor's lint settings over it (as the server lints
    scripts), plus what the editor decides: probes on, and trust."""
    from nnprobe.server.configs import apply_editor

    file = params.get("config_file")
    root = Path(params.get("root") or Path(params["checkpoint"]).parent)
    try:
        base = load_config(Path(file)) if file else Config.default(root=root)
    except ConfigError:  # the server has already shown this mistake to the user
        base = Config.default(root=root)
    config = apply_editor(base, params.get("lint") or {})
    config.run_probes = True
    if params.get("gradients") is False:
        config.ignore = config.ignore | gradient_codes(config)
    config.trusted = trust.job_trusted(params)
    return trust.settle(config)


def gradient_codes(config: Config) -> set[str]:
    return {code for code in config.select - config.ignore if code.startswith("NP4")}


def run_inspection(params: dict[str, Any]) -> dict[str, Any]:
    """Inspect `params["checkpoint"]`: findings on it and on its script, and what the editor
    shows beside them. `"gradients": false` leaves out the gradient probe (NP4xx), the slow part;
    the result then says whether a second run with it would measure more (`gradients_skipped`)."""
    from nnprobe.core.files import Target
    from nnprobe.inspectors.checkpoint import inspect_checkpoint
    from nnprobe.probe.jobs import finding_to_dict
    from nnprobe.probe.runtime import STATE_DICT_KINDS

    path = Path(params["checkpoint"])
    config = editor_config(params)
    try:
        inspection = inspect_checkpoint(Target(path, str(path), explicit=True), config)
    except MemoryError:
        return {"error": {"code": "NP904", "message": "the inspection ran out of memory"}}
    runtime, checkpoint = inspection.runtime, inspection.checkpoint
    probe = runtime.probe if runtime is not None else {}
    modules: dict[str, dict[str, Any]] = {}
    if checkpoint is not None and runtime is not None:
        modules = weight_stats(checkpoint, runtime)
    for name, stats in (probe.get("modules") or {}).items():
        modules.setdefault(name, {}).update(stats)
    spec = runtime.resolution.spec if runtime and runtime.resolution else None
    skipped = (
        params.get("gradients") is False
        and bool(probe)
        and checkpoint is not None
        and checkpoint.kind != "onnx"
        and bool(gradient_codes(editor_config({**params, "gradients": True})))
    )
    return {
        "findings": [finding_to_dict(f) for f in inspection.result.findings],
        "analysed": inspection.result.analysed,
        "modules": modules,
        "script": script_info(runtime) if runtime is not None else None,
        "notes": list(probe.get("notes") or []),
        "measured_on": probe.get("measured_on"),
        "timings": probe.get("timings") or {},
        "cache_hit": probe.get("cache_hit"),
        "gradients_skipped": skipped,
        "needs_trust": bool(
            spec is not None
            and not config.trusted
            and checkpoint is not None
            and checkpoint.kind in STATE_DICT_KINDS
        ),
    }


def weight_stats(checkpoint: Checkpoint, runtime: RuntimePlan) -> dict[str, dict[str, Any]]:
    """Per weight layer: the weights' std and the nearest He/Glorot/LeCun reference std for the
    activation after it (when known)."""
    from nnprobe.inspectors.weights import WeightContext
    from nnprobe.probe.weight_stats import fans, references

    ctx = WeightContext.build(checkpoint, activation_hints=runtime.activation_hints)
    out: dict[str, dict[str, Any]] = {}
    for layer in ctx.weight_layers():
        name = layer.weight
        if name is None or not ctx.finite(name):
            continue
        weights = ctx.tensor(name)
        if weights.size < 2:
            continue
        std = float(weights.astype("float64").std())
        stats: dict[str, Any] = {"weight_std": std}
        fan_in, fan_out = fans(tuple(weights.shape))
        refs = references(layer.activation, fan_in, fan_out) if layer.activation else {}
        if refs and std > 0:
            label, variance = min(
                refs.items(), key=lambda item: max(std**2 / item[1], item[1] / std**2)
            )
            stats.update(reference=label, reference_std=math.sqrt(variance))
        if layer.activation:
            stats["activation"] = layer.activation
        out[layer.path] = stats
    return out


def script_info(runtime: RuntimePlan) -> dict[str, Any] | None:
    """The training script the findings were copied onto: each module's lines (1-based, the
    constructor call) and the model definition's line, for hover and code lenses."""
    smap = runtime.source_map
    if smap is None:
        return None
    model = runtime.resolution.model if runtime.resolution is not None else None
    node = getattr(model, "node", None)
    return {
        "path": str(smap.script.resolve()),
        "prefix": smap.prefix,
        "modules": {m: [r.start.line, r.end.line] for m, r in smap.ranges.items()},
        "model": (
            {"name": model.name, "line": int(getattr(node, "lineno", 1)), "kind": model.kind}
            if model is not None
            else None
        ),
    }
