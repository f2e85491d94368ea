"""Reads one checkpoint or ONNX file, runs the weight rules on it and, when the front door asks,
probes it (NP3xx/NP4xx), turning every kind of bad input into a finding: unreadable or truncated
(NP901), a pickle that would run code (NP902), a missing optional dependency (NP901 naming the
extra to install), no model for a state_dict (NP905), a probe that overran its budget (NP904).
Findings about a layer are also copied onto the line of the training script that creates it.

nnprobe.probe, and with it numpy, torch and onnx, is imported inside the handler, so registering
it costs the static path and the language server nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nnprobe.core.config import Config
from nnprobe.core.engine import FileResult, finalize, instantiate, internal_finding, run_rules
from nnprobe.core.files import Target, link_outside, outside_message
from nnprobe.core.finding import Evidence, Finding
from nnprobe.core.registry import all_rules

if TYPE_CHECKING:
    from nnprobe.probe.loading import Checkpoint
    from nnprobe.probe.runtime import RuntimePlan

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx")
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
        from nnprobe.probe.loading import LoadError, load_checkpoint
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
    except LoadError as exc:
        if exc.not_weights and not target.explicit:
            return Inspection(FileResult(display, [], analysed=False))
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
