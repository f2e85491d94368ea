"""One probe, end to end: inputs -> export (or cache) -> bind weights -> ONNX Runtime -> statistics
-> NP3xx findings, with the eager-hook fallback and its NP903 when export fails."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnprobe.core.config import Config
from nnprobe.core.engine import finalize, instantiate, internal_finding, run_rules
from nnprobe.core.finding import Evidence, Finding
from nnprobe.core.registry import all_rules, get_rule
from nnprobe.core.rule import Rule
from nnprobe.inspectors.activation_context import ActivationContext, ValueSummary
from nnprobe.probe.inputs import (
    DEFAULT_SYNTHETIC,
    InputSpec,
    ProbeInputs,
    spec_from_module,
    spec_from_signature,
    synthetic_inputs,
)
from nnprobe.probe.memory import PeakMemory
from nnprobe.probe.runner import DEFAULT_OPT_LEVEL, DEFAULT_SUB_BATCH
from nnprobe.probe.stats import StatsSpec

if TYPE_CHECKING:
    import onnx
    import torch


class ProbeError(Exception):
    """Nothing could be measured (the forward raises on the probe inputs, ONNX Runtime cannot run
    the graph, no input shape can be found); the message says why and is meant for the user."""


@dataclass(frozen=True)
class ProbeOptions:
    """How to probe (not what to report: thresholds are the rules' options in Config)."""

    sub_batch: int = DEFAULT_SUB_BATCH
    synthetic_count: int = DEFAULT_SYNTHETIC
    input_shape: tuple[int, ...] | None = None
    seed: int = 0
    cache_dir: Path | None = None
    use_cache: bool = True
    exporters: tuple[str, ...] = ("torchscript", "dynamo")
    opt_level: str = DEFAULT_OPT_LEVEL
    threads: int = 0
    arch: str = ""  # the model factory and its constructor arguments, for the cache key
    force_eager: bool = False


@dataclass
class ProbeResult:
    context: ActivationContext
    findings: list[Finding]
    backend: str  # "onnxruntime" or "eager"
    used_fallback: bool = False
    fallback_reason: str | None = None
    peak_memory_bytes: int | None = None
    peak_memory_exact: bool = False
    cache_hit: bool = False
    exporter: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def values(self) -> tuple[ValueSummary, ...]:
        return self.context.values

    @property
    def synthetic(self) -> bool:
        return self.context.synthetic


def activation_rules() -> list[type[Rule]]:
    return [rule for rule in all_rules() if rule.evidence is Evidence.ACTIVATIONS]


def _stats_spec(config: Config) -> StatsSpec:
    rule = get_rule("NP302")
    if rule is None:
        return StatsSpec()
    settings = rule(config.rules.get(rule.code)).settings
    return StatsSpec(
        preactivation_threshold=float(settings["preactivation-threshold"]),
        asymptote_margin=float(settings["asymptote-margin"]),
    )


def _resolve_inputs(
    inputs: Any, labels: Any, options: ProbeOptions, spec: InputSpec | None
) -> ProbeInputs:
    if inputs is None:
        if options.input_shape is not None:
            spec = InputSpec(tuple(options.input_shape), note="from the given input shape")
        if spec is None:
            raise ProbeError(
                "cannot tell the model's input shape: give probe data or an input shape "
                "(--input-shape 3,32,32)"
            )
        probe = synthetic_inputs(
            spec.shape,
            options.synthetic_count,
            seed=options.seed,
            integer_high=spec.integer_high,
            note=spec.note,
        )
    elif isinstance(inputs, ProbeInputs):
        probe = inputs
    else:
        probe = ProbeInputs.from_arrays(inputs)
    if labels is not None:
        probe = ProbeInputs.from_arrays(
            probe.x, labels, source=probe.source, synthetic=probe.synthetic
        )
    return probe


def _finish(
    values: list[ValueSummary],
    probe: ProbeInputs,
    *,
    display_path: str,
    config: Config,
    backend: str,
    fallback_reason: str | None,
    timings: dict[str, float],
) -> tuple[ActivationContext, list[Finding]]:
    start = time.perf_counter()
    context = ActivationContext(
        path=display_path,
        values=tuple(sorted(values, key=lambda v: v.order)),
        input=probe.summary(),
        measured_on=probe.describe(),
        backend=backend,
        labels=int(probe.y.shape[0]) if probe.y is not None else None,
        data={"input_note": probe.note} if probe.note else {},
    )
    rules = instantiate(config, config.enabled_codes(display_path), activation_rules())
    findings = run_rules(rules, context, display_path, config)
    if fallback_reason is not None and get_rule("NP903") is not None:
        message = (
            f"ONNX export failed ({fallback_reason}); activations were measured with eager "
            "forward hooks instead, which is slower and misses functional calls"
        )
        findings.append(internal_finding("NP903", display_path, message, config))
    timings["rules"] = time.perf_counter() - start
    return context, finalize(findings, config, display_path)


def probe_module(
    module: torch.nn.Module,
    inputs: ProbeInputs | Any = None,
    *,
    labels: Any = None,
    display_path: str,
    config: Config | None = None,
    options: ProbeOptions | None = None,
) -> ProbeResult:
    """Probe a PyTorch model (weights already loaded) and return its statistics and NP3xx findings.

    `inputs` is ProbeInputs, an array/tensor (batch first), or None for synthetic inputs of the
    shape `options.input_shape` or the first layer's. The model is left as it was found. Raises
    ProbeError when nothing could be measured.
    """
    import torch

    from nnprobe.probe.export import ExportError, export_module, weight_arrays
    from nnprobe.probe.hooks import eager_probe
    from nnprobe.probe.modules import module_kinds
    from nnprobe.probe.runner import architecture, run_probe

    config = config or Config.default()
    options = options or ProbeOptions()
    spec = _stats_spec(config)
    probe = _resolve_inputs(inputs, labels, options, spec_from_module(module))
    timings: dict[str, float] = {}
    values: list[ValueSummary] | None = None
    reason: str | None = None
    cache_hit, exporter = False, None
    with PeakMemory() as memory:
        if options.force_eager:
            reason = "export skipped on request"
        else:
            try:
                t0 = time.perf_counter()
                example = torch.from_numpy(probe.x[: min(3, probe.count)].copy())
                exported = export_module(
                    module,
                    example,
                    cache_dir=options.cache_dir,
                    arch=options.arch,
                    exporters=options.exporters,
                    use_cache=options.use_cache,
                )
                t1 = time.perf_counter()
                weights = weight_arrays(exported, module)
                arch = architecture(
                    exported.key,
                    exported.model,
                    weights,
                    exported.module_names,
                    module_kinds(module),
                )
                graph = arch.graph
                t2 = time.perf_counter()
                session = arch.session(weights, options.opt_level, options.threads)
                t3 = time.perf_counter()
                values = run_probe(session, graph, probe, spec=spec, sub_batch=options.sub_batch)
                t4 = time.perf_counter()
                timings.update(export=t1 - t0, bind=t2 - t1, session=t3 - t2, run=t4 - t3)
                cache_hit, exporter = exported.cache_hit, exported.exporter
            except ExportError as exc:
                reason = str(exc)
            except Exception as exc:  # ONNX Runtime could not build or run the graph
                reason = f"ONNX Runtime could not run the exported graph: {_short(exc)}"
        if values is None:
            t0 = time.perf_counter()
            try:
                values = eager_probe(module, probe, spec=spec, sub_batch=options.sub_batch)
            except Exception as exc:
                raise ProbeError(
                    f"the model's forward raised on {probe.describe()}: {_short(exc)}"
                ) from exc
            timings["eager"] = time.perf_counter() - t0
    backend = "eager" if reason is not None else "onnxruntime"
    context, findings = _finish(
        values,
        probe,
        display_path=display_path,
        config=config,
        backend=backend,
        fallback_reason=reason,
        timings=timings,
    )
    return ProbeResult(
        context=context,
        findings=findings,
        backend=backend,
        used_fallback=reason is not None,
        fallback_reason=reason,
        peak_memory_bytes=memory.delta,
        peak_memory_exact=memory.exact,
        cache_hit=cache_hit,
        exporter=exporter,
        timings=timings,
    )


def probe_onnx(
    model: onnx.ModelProto | Path | str,
    inputs: ProbeInputs | Any = None,
    *,
    labels: Any = None,
    display_path: str,
    config: Config | None = None,
    options: ProbeOptions | None = None,
) -> ProbeResult:
    """Probe an ONNX model (a ModelProto or a file) through ONNX Runtime; no torch needed.

    Synthetic inputs, when `inputs` is None, follow the graph's input signature (or
    `options.input_shape`). Raises ProbeError when the graph cannot be read or run.
    """
    import onnx as onnx_lib

    from nnprobe.probe.graph import build_graph
    from nnprobe.probe.runner import make_session, run_probe

    config = config or Config.default()
    options = options or ProbeOptions()
    spec = _stats_spec(config)
    if isinstance(model, (str, Path)):
        try:
            model = onnx_lib.load(str(model))
        except Exception as exc:
            raise ProbeError(f"cannot read the ONNX model: {_short(exc)}") from exc
    try:
        graph = build_graph(model)
    except Exception as exc:
        raise ProbeError(f"cannot analyse the ONNX graph: {_short(exc)}") from exc
    signature = spec_from_signature(graph.input_shape, graph.input_dtype)
    probe = _resolve_inputs(inputs, labels, options, signature)
    probe, sub_batch = _fixed_batch(probe, graph.input_shape, options.sub_batch)
    timings: dict[str, float] = {}
    with PeakMemory() as memory:
        try:
            t0 = time.perf_counter()
            session = make_session(model, graph, options.opt_level, options.threads)
            t1 = time.perf_counter()
            values = run_probe(session, graph, probe, spec=spec, sub_batch=sub_batch)
            timings.update(session=t1 - t0, run=time.perf_counter() - t1)
        except Exception as exc:
            raise ProbeError(
                f"ONNX Runtime could not run the model on {probe.describe()}: {_short(exc)}"
            ) from exc
    context, findings = _finish(
        values,
        probe,
        display_path=display_path,
        config=config,
        backend="onnxruntime",
        fallback_reason=None,
        timings=timings,
    )
    return ProbeResult(
        context=context,
        findings=findings,
        backend="onnxruntime",
        peak_memory_bytes=memory.delta,
        peak_memory_exact=memory.exact,
        timings=timings,
    )


def _fixed_batch(
    probe: ProbeInputs, shape: tuple[int | str | None, ...], sub_batch: int
) -> tuple[ProbeInputs, int]:
    """A graph exported with a fixed batch size (often 1) takes exactly that many samples per
    run: sub-batches of that size, and the probe trimmed to a multiple of it."""
    fixed = shape[0] if shape else None
    if not isinstance(fixed, int) or fixed <= 0:
        return probe, sub_batch
    usable = probe.count - probe.count % fixed
    if usable == 0:
        raise ProbeError(
            f"the model takes batches of exactly {fixed} samples; the probe has {probe.count}"
        )
    if usable != probe.count:
        y = probe.y[:usable] if probe.y is not None else None
        probe = replace(probe, x=probe.x[:usable], y=y)
    return probe, fixed


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".strip()[:300]
