"""Runtime evidence for one checkpoint, as the front door sees it: which model, which inputs, one
job to the worker within a time budget, and the findings mapped onto the training script.

This runs in the front door's process and needs no torch: factory resolution and the source map
are static, and the probe itself runs in the worker (worker_client.py, jobs.py). With
NNPROBE_WORKER=inprocess the job runs in this process instead, without a time budget (for
debugging a probe under a debugger).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnprobe.core import trust
from nnprobe.core.config import Config, split_factory
from nnprobe.core.engine import internal_finding
from nnprobe.core.finding import Finding
from nnprobe.core.reading import escapes
from nnprobe.probe.factory import Resolution, resolve_factory
from nnprobe.probe.source_map import SourceMap, display_for

if TYPE_CHECKING:
    from nnprobe.probe.loading import Checkpoint

STATE_DICT_KINDS = frozenset({"state_dict", "safetensors"})


@dataclass
class RuntimePlan:
    """What is known statically about a checkpoint before probing it."""

    resolution: Resolution | None = None
    source_map: SourceMap | None = None
    # The probe job's result without its findings (statistics, notes, timings), once it ran.
    probe: dict[str, Any] = field(default_factory=dict)

    @property
    def activation_hints(self) -> dict[str, str]:
        return dict(self.source_map.activations) if self.source_map is not None else {}


def plan(checkpoint: Checkpoint, config: Config) -> RuntimePlan:
    """The factory and source map for a state_dict (static: reads scripts, imports nothing)."""
    if checkpoint.kind not in STATE_DICT_KINDS:
        return RuntimePlan()
    resolution = resolve_factory(checkpoint.path, config)
    smap = None
    if resolution.ctx is not None and resolution.model is not None:
        script = Path(resolution.ctx.path)
        display = display_for(script, checkpoint.display)
        smap = SourceMap.build(resolution.ctx, resolution.model, script, display)
        smap.prefix = checkpoint.prefix
    return RuntimePlan(resolution, smap)


def probe_checkpoint(checkpoint: Checkpoint, config: Config, runtime: RuntimePlan) -> list[Finding]:
    """NP3xx/NP4xx findings (and the NP9xx notes about the probe) on the checkpoint's path."""
    display = checkpoint.display

    def note(code: str, message: str) -> list[Finding]:
        return [internal_finding(code, display, message, config)]

    params: dict[str, Any] = {
        "checkpoint": str(checkpoint.path.resolve()),
        "display": display,
        "trusted": config.trusted,
        "allow_pickle": trust.may_unpickle(config),
        "config": _config_dict(config),
        "input_shape": list(config.input_shape) if config.input_shape else None,
        "sub_batch": config.probe_batch,
    }
    if checkpoint.kind in STATE_DICT_KINDS:
        resolution = runtime.resolution
        if resolution is None or resolution.spec is None:
            reason = resolution.reason if resolution is not None else "not looked for"
            return note("NP905", f"no model factory found for this state_dict: {reason}")
        spec = resolution.spec
        if not config.trusted:
            return note(
                "NP905",
                f"the model factory {spec.describe()} ({spec.origin}) was found, but importing "
                f"workspace code is not allowed here ({trust.UNTRUSTED_WAYS}); "
                "only the weight rules ran",
            )
        params["factory"] = spec.to_dict()
        from nnprobe.probe.train_settings import train_settings

        ctx = resolution.ctx
        params["training"] = train_settings(
            ctx, spec.script.name, dict(checkpoint.metadata)
        ).to_dict()
    else:
        from nnprobe.probe.train_settings import train_settings

        params["training"] = train_settings(None, "", dict(checkpoint.metadata)).to_dict()
    try:
        params["probe"] = probe_source(config)
    except ValueError as exc:
        return note("NP901", str(exc))
    return _run(params, config, display, runtime)


def probe_source(config: Config) -> dict[str, Any] | None:
    """`probe = ...` as the worker wants it: a data file or a script callable, made absolute."""
    if not config.probe:
        return None
    base = config.probe_base or config.root
    text = config.probe
    file, sep, name = text.rpartition(":")
    if sep and file.endswith(".py"):
        split_factory(text)  # validates the name
        if not config.trusted:
            raise ValueError(
                f"probe inputs from {text} need importing workspace code, which is not allowed "
                f"here ({trust.UNTRUSTED_WAYS})"
            )
        script = (base / file).resolve()
        if not script.is_file():
            raise ValueError(f"cannot use the probe inputs {text}: {script} does not exist")
        return {"script": str(script), "callable": name}
    # Kept as named (links unresolved) so that the worker's guarded open sees any link.
    path = Path(os.path.normpath((base / text).absolute()))
    if not os.path.lexists(path):
        raise ValueError(f"cannot use the probe inputs {text}: no such file")
    if config.probe_named:
        return {"file": str(path)}
    # A config is repository content: the data file it names must be in the workspace.
    root = Path(os.path.normpath(config.root.absolute()))
    where = f"{config.source.name} names" if config.source else "the config names"
    if not path.is_relative_to(root):
        raise ValueError(
            f"cannot use the probe inputs {text}: {where} a file outside the workspace ({path}), "
            "which nnprobe does not read for a configured probe (pass it with --probe)"
        )
    real = escapes(path, [root])
    if real is not None:
        raise ValueError(
            f"cannot use the probe inputs {text}: a symbolic link to {real}, outside the "
            "workspace: not read (pass it with --probe)"
        )
    return {"file": str(path), "roots": [str(root)]}


def _config_dict(config: Config) -> dict[str, Any]:
    from nnprobe.probe.jobs import config_to_dict

    return config_to_dict(config)


def error_finding(error: dict[str, Any], display: str, config: Config) -> Finding:
    """The NP9xx finding for a worker's `error` answer (NP907 when its code is not one)."""
    code = str(error.get("code", "NP907"))
    code = code if code.startswith("NP9") else "NP907"
    finding = internal_finding(code, display, str(error.get("message", "")), config)
    if error.get("traceback"):
        finding.data["traceback"] = error["traceback"]
    return finding


def _run(
    params: dict[str, Any], config: Config, display: str, runtime: RuntimePlan
) -> list[Finding]:
    from nnprobe.probe.jobs import finding_from_dict

    if os.environ.get("NNPROBE_WORKER") == "inprocess":
        from nnprobe.probe.jobs import run_job

        response = run_job(params)
        response = {"error": response["error"]} if "error" in response else {"result": response}
    else:
        from nnprobe.probe.progress import Progress
        from nnprobe.probe.worker_client import WorkerError, default_memory_budget, shared_client

        timeout = config.probe_timeout
        try:
            with Progress(f"probing {display}"):
                response = shared_client().request(
                    "probe", params, timeout, what="the probe", memory_limit=default_memory_budget()
                )
        except WorkerError as exc:
            if exc.memory:
                message = (
                    f"{exc.message} (3/4 of the memory available when it started); "
                    "--probe-batch N bounds the probe's memory; the weight rules ran"
                )
            elif exc.timeout:
                message = (
                    f"the probe took longer than its {timeout:g} s budget and was stopped "
                    "(--probe-timeout raises it; --probe-batch or smaller probe data make it "
                    "faster); the weight rules ran"
                )
            else:
                message = f"the probe worker stopped: {exc.message}; the weight rules ran"
            return [internal_finding("NP904", display, message, config)]
    if "error" in response:
        return [error_finding(response["error"], display, config)]
    result = response.get("result", {})
    runtime.probe = {k: v for k, v in result.items() if k != "findings"}
    return [finding_from_dict(f) for f in result.get("findings", [])]
