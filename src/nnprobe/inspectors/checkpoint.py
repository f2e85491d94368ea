"""Reads one checkpoint or ONNX file and runs the weight rules on it, turning every kind of bad
input into a finding: unreadable or truncated (NP901), a pickle that would run code (NP902), a
missing optional dependency (NP901 naming the extra to install).

nnprobe.probe, and with it numpy, torch and onnx, is imported inside the handler, so registering
it costs the static path and the language server nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from nnprobe.core.config import Config
from nnprobe.core.engine import FileResult, finalize, instantiate, internal_finding, run_rules
from nnprobe.core.files import Target
from nnprobe.core.finding import Evidence, Finding
from nnprobe.core.registry import all_rules

if TYPE_CHECKING:
    from nnprobe.probe.loading import Checkpoint

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx")
INSTALL_HINT = "pip install 'nnprobe[probe]'"


def check_checkpoint(target: Target, config: Config) -> FileResult:
    display = target.display
    try:
        from nnprobe.probe.loading import LoadError, load_checkpoint
    except ImportError as exc:
        message = (
            f"inspecting {target.path.suffix} files needs {exc.name or 'numpy'}, which is not "
            f"installed: {INSTALL_HINT}"
        )
        return _failed(target, config, "NP901", message)
    try:
        checkpoint = load_checkpoint(target.path, allow_pickle=config.allow_pickle)
    except LoadError as exc:
        if exc.not_weights and not target.explicit:
            return FileResult(display, [], analysed=False)
        return _failed(target, config, exc.code, exc.message)
    checkpoint.display = display
    findings = check_weights(checkpoint, config)
    findings.extend(probe_hook(checkpoint, config))
    return FileResult(display, finalize(findings, config, target.path))


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


def probe_hook(checkpoint: Checkpoint, config: Config) -> list[Finding]:
    """Extension point for runtime evidence: activation (NP3xx) and gradient (NP4xx) probes, and
    the NP903/NP904/NP905 notes about them, plug in here.

    It is called once per loaded checkpoint after the weight rules, with the checkpoint (its
    `model` is the onnx.ModelProto, TorchScript module or unpickled nn.Module when there is one;
    for a state_dict a model factory must be resolved first) and the run's config. It returns
    findings on `checkpoint.display`, not yet finalized: the handler applies selection and
    severity overrides. Nothing is probed yet, so it returns no findings.
    """
    return []


def _failed(target: Target, config: Config, code: str, message: str) -> FileResult:
    finding = internal_finding(code, target.display, message, config)
    return FileResult(target.display, finalize([finding], config, target.path))
