"""One probe job, as the worker runs it: load -> build -> bind weights -> inputs -> probes.

The job is plain data in and plain data out (see docs/worker.md), so the same function serves the
CLI's worker subprocess, the language server's worker and an in-process call. It imports torch,
onnxruntime and the user's model code; the front doors never call it directly.

A failure that stops the probe is returned as `error` with the finding code that reports it:

| what failed | code |
|---|---|
| the checkpoint cannot be read, the probe inputs cannot be read or built | NP901 |
| no factory, the factory cannot build the model, or the weights do not fit it | NP905 |
| the forward raised, or ONNX Runtime and the eager fallback both failed | NP903 |
| an allocation refused, in a forward too (time budgets are the caller's to enforce) | NP904 |
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from nnprobe.core.config import Config
from nnprobe.core.files import link_outside, outside_message
from nnprobe.core.finding import Confidence, Evidence, Finding, Range, Severity
from nnprobe.probe.memory import out_of_memory


class JobError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def config_to_dict(config: Config) -> dict[str, Any]:
    """The parts of a Config a probe needs: which rules run and their thresholds."""
    return {
        "select": sorted(config.select),
        "ignore": sorted(config.ignore),
        "rules": config.rules,
        "severity": {k: v.value for k, v in config.severity.items()},
        "root": str(config.root),
    }


def config_from_dict(data: dict[str, Any]) -> Config:
    return Config(
        select=set(data.get("select", [])),
        ignore=set(data.get("ignore", [])),
        rules=dict(data.get("rules", {})),
        severity={k: Severity(v) for k, v in data.get("severity", {}).items()},
        root=Path(data.get("root", ".")),
    )


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    data = finding.to_dict()
    data["data"] = {k: v for k, v in finding.data.items() if _jsonable(v)}
    return data


def finding_from_dict(data: dict[str, Any]) -> Finding:
    r = data["range"]
    return Finding(
        code=data["code"],
        name=data["name"],
        severity=Severity(data["severity"]),
        confidence=Confidence(data["confidence"]),
        message=data["message"],
        path=data["path"],
        range=Range.of(
            r["start"]["line"], r["start"]["column"], r["end"]["line"], r["end"]["column"]
        ),
        evidence=Evidence(data["evidence"]),
        module=data.get("module"),
        url=data.get("url", ""),
        data=dict(data.get("data") or {}),
    )


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def run_job(params: dict[str, Any]) -> dict[str, Any]:
    """Run one probe job; `{"findings": [...], "notes": [...], ...}` or `{"error": {...}}`."""
    try:
        return _run(params)
    except (JobError, MemoryError, RuntimeError) as exc:
        refused = out_of_memory(exc)
        if refused is not None:  # also a forward whose allocation failed, wrapped as NP903
            message = f"the probe ran out of memory: {refused}"
            return {"error": {"code": "NP904", "message": message}}
        if isinstance(exc, JobError):
            return {"error": {"code": exc.code, "message": exc.message}}
        raise


def _run(params: dict[str, Any]) -> dict[str, Any]:
    from nnprobe.probe.inputs import ProbeInputError
    from nnprobe.probe.loading import LoadError, load_checkpoint
    from nnprobe.probe.pipeline import ProbeError, ProbeOptions, probe_module, probe_onnx

    display = params["display"]
    config = config_from_dict(params.get("config", {}))
    real = link_outside(Path(params["checkpoint"]), [config.root])
    if real is not None:
        raise JobError("NP901", outside_message(real))
    try:
        checkpoint = load_checkpoint(params["checkpoint"], bool(params.get("allow_pickle")))
    except LoadError as exc:
        raise JobError(exc.code, exc.message) from None
    checkpoint.display = display
    shape = params.get("input_shape")
    spec = None
    module: Any = None
    notes: list[str] = []
    if checkpoint.kind != "onnx":
        module, spec = _module(checkpoint, params)
    try:
        inputs = _inputs(params)
    except ProbeInputError as exc:
        raise JobError("NP901", f"cannot use the probe inputs: {exc}") from None
    if not shape and inputs is None and checkpoint.kind == "torchscript":
        shape = _shape_from_weights(checkpoint)
    options = ProbeOptions(
        sub_batch=int(params.get("sub_batch") or ProbeOptions().sub_batch),
        input_shape=tuple(shape) if shape else None,
        arch=spec.describe() if spec is not None else "",
    )
    try:
        if checkpoint.kind == "onnx":
            result = probe_onnx(
                checkpoint.model, inputs, display_path=display, config=config, options=options
            )
        else:
            result = probe_module(
                module, inputs, display_path=display, config=config, options=options
            )
    except ProbeError as exc:
        raise JobError("NP903", f"the activation probe could not run: {exc}") from None
    findings = list(result.findings)
    notes.append(
        f"activations measured on {result.context.measured_on} with {result.backend}"
        + (" (export cache hit)" if result.cache_hit else "")
    )
    modules = activation_stats(result.context.values)
    if module is not None:
        findings.extend(
            _gradients(module, inputs, params, display, config, options, notes, modules)
        )
    return {
        "findings": [finding_to_dict(f) for f in findings],
        "notes": notes,
        "modules": modules,
        "backend": result.backend,
        "measured_on": result.context.measured_on,
        "peak_memory_bytes": result.peak_memory_bytes,
        "cache_hit": result.cache_hit,
        "timings": result.timings,
    }


def activation_stats(values: Any) -> dict[str, dict[str, Any]]:
    """Per module path, the statistics of the last value it produces (an activation module's
    output, else the layer's own): what an editor shows when hovering the layer's line. A
    functional activation (`torch.relu(self.fc1(x))`) counts for the layer that feeds it."""
    modules: dict[str, dict[str, Any]] = {}
    for value in sorted(values, key=lambda v: v.order):
        key = value.module or value.layer
        if not key:
            continue
        stats: dict[str, Any] = {"kind": value.kind, "mean": value.mean, "std": value.std}
        if value.unit_max is not None and value.kind == "relu":
            stats["dead_fraction"] = value.dead_fraction
        if value.saturated_fraction is not None:
            stats["saturated_fraction"] = value.saturated_fraction
        if value.nonfinite:
            stats["nonfinite"] = value.nonfinite
        modules.setdefault(key, {}).update(stats)
    return modules


def _module(checkpoint: Any, params: dict[str, Any]) -> tuple[Any, Any]:
    from nnprobe.probe.factory import FactoryError, FactorySpec, build_model, load_weights

    if checkpoint.model is not None:  # TorchScript, or a pickled model the user allowed
        return checkpoint.model, None
    factory = params.get("factory")
    if factory is None:
        raise JobError("NP905", "no model factory was given for this state_dict")
    spec = FactorySpec.from_dict(factory)
    try:
        module = build_model(spec)
        load_weights(module, checkpoint, spec)
    except FactoryError as exc:
        raise JobError(exc.code, exc.message) from None
    module.eval()
    return module, spec


def _shape_from_weights(checkpoint: Any) -> list[int] | None:
    """A TorchScript module hides its layers' classes from the probe engine; its first weight
    layer's tensor still says how wide one sample is (spatial size 32 assumed for convs)."""
    for layer in checkpoint.layers():
        if layer.weight is None or layer.weight not in checkpoint.tensors:
            continue
        dims = checkpoint.tensors[layer.weight].shape
        if layer.kind == "linear" and len(dims) == 2:
            return [int(dims[1])]
        if layer.kind == "conv" and len(dims) >= 3:
            return [int(dims[1]), *([32] * (len(dims) - 2))]
        return None
    return None


def _inputs(params: dict[str, Any]) -> Any:
    """The probe inputs the job names: a data file, a callable in a script, or None (synthetic)."""
    from nnprobe.probe.inputs import ProbeInputError, ProbeInputs, load_probe_file

    probe = params.get("probe")
    if not probe:
        return None
    if probe.get("callable"):
        from nnprobe.probe.workspace_import import WorkspaceImportError, call_object

        script, name = Path(probe["script"]), probe["callable"]
        label = f"{script.name}:{name}"
        try:
            batch = call_object(script, name)
        except WorkspaceImportError as exc:
            raise ProbeInputError(str(exc)) from None
        except Exception as exc:
            raise ProbeInputError(f"{label}() raised {type(exc).__name__}: {exc}") from None
        if isinstance(batch, tuple | list) and len(batch) == 2:
            return ProbeInputs.from_arrays(batch[0], batch[1], source=label)
        return ProbeInputs.from_arrays(batch, source=label)
    roots = [Path(root) for root in probe["roots"]] if probe.get("roots") else None
    return load_probe_file(probe["file"], roots)


def _gradients(
    module: Any,
    inputs: Any,
    params: dict[str, Any],
    display: str,
    config: Config,
    options: Any,
    notes: list[str],
    modules: dict[str, dict[str, Any]],
) -> list[Finding]:
    """NP4xx findings when the gradient probe is installed and any gradient rule is enabled;
    each layer's gradient norm goes into `modules`."""
    if importlib.util.find_spec("nnprobe.probe.gradients") is None:
        return []
    if not any(code.startswith("NP4") for code in config.select - config.ignore):
        return []
    from nnprobe.inspectors.gradient_context import OptimizerSettings
    from nnprobe.probe.gradients import GradientError, probe_gradients
    from nnprobe.probe.train_settings import TrainSettings

    training = TrainSettings.from_dict(params.get("training") or {})
    # None: the gradient probe's own defaults, and its findings say so.
    optimizer = None
    if training.optimizer_note is not None:
        optimizer = OptimizerSettings(
            kind=training.optimizer,
            lr=training.lr,
            momentum=training.momentum,
            weight_decay=training.weight_decay,
        )
    try:
        result = probe_gradients(
            module,
            inputs,
            loss=training.loss,
            optimizer=optimizer,
            display_path=display,
            config=config,
            source_note=training.optimizer_note,
            input_shape=options.input_shape,
        )
    except GradientError as exc:
        notes.append(f"gradients not measured: {exc}")
        return []
    for layer in result.layers:
        stats = modules.setdefault(layer.module, {})
        stats["grad_norm"] = layer.grad_norm
        if layer.update_ratio is not None:
            stats["update_ratio"] = layer.update_ratio
    return list(result.findings)
