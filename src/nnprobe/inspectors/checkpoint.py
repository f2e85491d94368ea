"""Reads one checkpoint or ONNX file, runs the weight rules on it and, when the front door asks,
probes it (NP3xx/NP4xx), turning every kind of bad input into a finding: unreadable or truncated
(NP901), a pickle or TorchScript archive that would run code (NP902), a missing optional
dependency (NP901 naming the extra to install), no model for a state_dict (NP905), a probe that
overran its budget (NP904). Findings about a layer are also copied onto the line of the training
script that creates it.

A refused TorchScript archive still gets the weight rules, on the weights read without running it.
One that may run (trusted, opted in) is never loaded here: the whole inspection is the worker's
`checkpoint` job, under the probe's time and memory budget, and its findings come back from there.

nnprobe.probe, and with it numpy, torch and onnx, is imported inside the handler, so registering
it costs the static path and the language server nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnprobe.core import trust
from nnprobe.core.config import Config
from nnprobe.core.engine import FileResult, finalize, instantiate, internal_finding, run_rules
from nnprobe.core.files import CHECKPOINT_SUFFIXES as CHECKPOINT_SUFFIXES  # re-exported
from nnprobe.core.files import Target, link_outside, outside_message
from nnprobe.core.finding import Evidence, Finding
from nnprobe.core.registry import all_rules

if TYPE_CHECKING:
    from nnprobe.probe.loading import Checkpoint
    from nnprobe.probe.runtime import RuntimePlan

INSTALL_HINT = "pip install 'nnprobe[probe]'"


@dataclass
class Inspection:
    """A checkpoint's findings with what was learnt on the way (the loaded file, its factory and
    source map, the probe job's statistics), for front doors that show more than findings."""

    result: FileResult
    checkpoint: Checkpoint | None = None
    runtime: RuntimePlan | None = None


def check_checkpoint(target: Target, config: Config) -> FileResult:
    return inspect_checkpoint(target, config).result


def inspect_checkpoint(target: Target, config: Config) -> Inspection:
    display = target.display
    try:
        from nnprobe.probe.loading import LoadError, WorkerOnly, load_checkpoint
    except ImportError as exc:
        message = (
            f"inspecting {target.path.suffix} files needs {exc.name or 'numpy'}, which is not "
            f"installed: {INSTALL_HINT}"
        )
        return Inspection(_failed(target, config, "NP901", message))
    if not target.follow_links:
        roots = [config.root] if target.within is None else [config.root, target.within]
        real = link_outside(target.path, roots)
        if real is not None:
            return Inspection(_failed(target, config, "NP901", outside_message(real)))
    try:
        checkpoint = load_checkpoint(target.path, allow_pickle=config.allow_pickle)
    except WorkerOnly:
        return _inspect_in_worker(target, config)
    except LoadError as exc:
        if exc.not_weights and not target.explicit:
            return Inspection(FileResult(display, [], analysed=False))
        if exc.unrun is not None:
            return _with_unrun_weights(target, config, exc.code, exc.message, exc.unrun)
        return Inspection(_failed(target, config, exc.code, exc.message))
    checkpoint.display = display
    from nnprobe.probe.runtime import RuntimePlan, plan

    findings: list[Finding] = []
    try:
        runtime = plan(checkpoint, config)
    except Exception as exc:  # a bug in model resolution must not cost the weight findings
        runtime = RuntimePlan()
        message = f"finding the model for this checkpoint crashed ({type(exc).__name__}: {exc})"
        findings.append(internal_finding("NP907", display, message, config, trace=exc))
    findings += check_weights(checkpoint, config, runtime.activation_hints)
    findings.extend(probe_hook(checkpoint, config, runtime))
    findings = finalize(findings, config, target.path)
    smap = runtime.source_map
    if smap is not None:
        # Runtime findings also land on the line of the training script that defines the layer.
        from nnprobe.core.suppressions import parse_suppressions

        copies = smap.copies(findings, display)
        findings += finalize(copies, config, smap.script, parse_suppressions(smap.text))
    return Inspection(FileResult(display, findings), checkpoint, runtime)


def check_weights(
    checkpoint: Checkpoint, config: Config, activation_hints: Mapping[str, str] | None = None
) -> list[Finding]:
    """The enabled NP2xx findings on a loaded checkpoint (not yet finalized). `activation_hints`
    (module path -> activation) fill in what the file itself does not say."""
    from nnprobe.inspectors.weights import WeightContext

    codes = config.enabled_codes(checkpoint.display)
    rules = instantiate(config, codes, (r for r in all_rules() if r.evidence is Evidence.WEIGHTS))
    if not rules:
        return []
    ctx = WeightContext.build(checkpoint, activation_hints=activation_hints)
    return run_rules(rules, ctx, checkpoint.display, config)


def probe_hook(
    checkpoint: Checkpoint, config: Config, runtime: RuntimePlan | None = None
) -> list[Finding]:
    """Runtime evidence: activation (NP3xx) and gradient (NP4xx) probes, and the NP901/NP903/
    NP904/NP905 notes about them, when the front door asked for probes (`config.run_probes`).

    ONNX files go straight to ONNX Runtime; TorchScript and allowed pickled modules are probed
    as they are; a state_dict needs the model factory in `runtime` (see nnprobe.probe.factory)
    and a trusted workspace to build it. The probe runs in the worker process under
    `config.probe_timeout`. Returns findings on `checkpoint.display`, not yet finalized.
    """
    if not config.run_probes:
        return []
    from nnprobe.probe.runtime import RuntimePlan, probe_checkpoint

    return probe_checkpoint(checkpoint, config, runtime or RuntimePlan())


def _failed(target: Target, config: Config, code: str, message: str) -> FileResult:
    finding = internal_finding(code, target.display, message, config)
    return FileResult(target.display, finalize([finding], config, target.path))


def _with_unrun_weights(
    target: Target, config: Config, code: str, message: str, checkpoint: Checkpoint
) -> Inspection:
    """The finding, and the weight rules on what was read without running the file."""
    from nnprobe.probe.runtime import RuntimePlan

    checkpoint.display = target.display
    findings = [internal_finding(code, target.display, message, config)]
    findings += check_weights(checkpoint, config)
    result = FileResult(target.display, finalize(findings, config, target.path))
    return Inspection(result, checkpoint, RuntimePlan())


def _inspect_in_worker(target: Target, config: Config) -> Inspection:
    """The inspection of a file that only the worker may load, run there (`checkpoint_job`)
    within the probe's budget: its code runs in a process that can be killed, and what it prints
    lands on the worker's stderr, never on this process's stdout."""
    from nnprobe.probe.jobs import finding_from_dict
    from nnprobe.probe.progress import Progress
    from nnprobe.probe.runtime import RuntimePlan, error_finding
    from nnprobe.probe.worker_client import WorkerError, default_memory_budget, shared_client

    display = target.display
    params = {
        "checkpoint": str(target.path.resolve()),
        "display": display,
        "trusted": config.trusted,
        "allow_pickle": trust.may_unpickle(config),
        "config": _job_config(config),
    }
    what = "loading the TorchScript archive" + (" and probing it" if config.run_probes else "")
    timeout = config.probe_timeout
    try:
        with Progress(f"{what}: {display}"):
            response = shared_client().request(
                "checkpoint", params, timeout, what=what, memory_limit=default_memory_budget()
            )
    except WorkerError as exc:
        from nnprobe.probe.loading import unrun_weights

        unrun = unrun_weights(target.path)
        rules = (
            "the weight rules ran on its weights as read without running it"
            if unrun is not None
            else "no weight rule ran"
        )
        if exc.timeout:
            message = (
                f"{what} took longer than its {timeout:g} s budget and was stopped "
                f"(--probe-timeout raises it); {rules}"
            )
        elif exc.memory:
            message = f"{exc.message} (3/4 of the memory available when it started); {rules}"
        else:
            message = f"the probe worker stopped: {exc.message}; {rules}"
        if unrun is not None:
            return _with_unrun_weights(target, config, "NP904", message, unrun)
        return Inspection(_failed(target, config, "NP904", message))
    if "error" in response:
        finding = error_finding(response["error"], display, config)
        return Inspection(FileResult(display, finalize([finding], config, target.path)))
    result = response.get("result") or {}
    findings = [finding_from_dict(f) for f in result.get("findings", [])]
    runtime = RuntimePlan(probe=dict(result.get("probe") or {}))
    file_result = FileResult(display, finalize(findings, config, target.path))
    return Inspection(file_result, None, runtime)


def _job_config(config: Config) -> dict[str, Any]:
    from nnprobe.probe.jobs import config_to_dict

    return {
        **config_to_dict(config),
        "run_probes": config.run_probes,
        "probe_timeout": config.probe_timeout,
        "input_shape": list(config.input_shape) if config.input_shape else None,
        "probe_batch": config.probe_batch,
        "probe": config.probe,
        "probe_base": str(config.probe_base) if config.probe_base is not None else None,
    }


def checkpoint_job(params: dict[str, Any]) -> dict[str, Any]:
    """Worker method `checkpoint`: `inspect_checkpoint` on `params["checkpoint"]` in the worker
    process, with the front door's settings (`config`: `_job_config`), trust and allow_pickle.
    Answers `{"findings": [...], "analysed": bool, "probe": {...}}`: the findings on `display`,
    and the probe job's statistics and notes without its findings."""
    from nnprobe.probe.jobs import config_from_dict, finding_to_dict

    data = dict(params.get("config") or {})
    config = config_from_dict(data)
    if "select" not in data:  # unsaid: the rules enabled by default, not none
        config.select = Config.default().select
    config.trusted = trust.job_trusted(params)
    config.allow_pickle = bool(params.get("allow_pickle"))
    config.run_probes = bool(data.get("run_probes"))
    config.probe_timeout = float(data.get("probe_timeout") or config.probe_timeout)
    config.input_shape = tuple(data["input_shape"]) if data.get("input_shape") else None
    config.probe_batch = data.get("probe_batch")
    config.probe = data.get("probe")
    config.probe_base = Path(data["probe_base"]) if data.get("probe_base") else None
    trust.settle(config)
    target = Target(Path(params["checkpoint"]), str(params["display"]), explicit=True)
    try:
        inspection = inspect_checkpoint(target, config)
    except MemoryError:
        return {"error": {"code": "NP904", "message": "the inspection ran out of memory"}}
    runtime = inspection.runtime
    return {
        "findings": [finding_to_dict(f) for f in inspection.result.findings],
        "analysed": inspection.result.analysed,
        "probe": runtime.probe if runtime is not None else {},
    }
