"""Looking inside a model: run it on a probe batch and measure every layer's activations.

Everything here may need torch, onnx, onnxruntime or numpy, and imports them inside functions, so
`import nnprobe.probe` stays cheap and the static front doors never pay for it.

Entry points (re-exported here lazily):

    probe_module(module, inputs=None, *, labels=None, display_path, config=None, options=None)
        -> ProbeResult
        A torch nn.Module with its weights loaded. Exported to ONNX once per architecture
        (TorchScript exporter, dynamo as fallback; cached on disk under NNPROBE_CACHE_DIR or
        ~/.cache/nnprobe, keyed by architecture), weights re-bound by name, run by ONNX Runtime in
        sub-batches. If export fails, forward hooks measure the same values (NP903 says why).

    probe_onnx(model_or_path, inputs=None, *, labels=None, display_path, config=None,
               options=None) -> ProbeResult
        An ONNX model, straight through ONNX Runtime; needs no torch.

`inputs` is a ProbeInputs (`load_probe_file("data.npz")`, `ProbeInputs.from_arrays(x, y)`), any
batch-first array or tensor, or None for seeded synthetic inputs (`options.input_shape`, else the
ONNX signature or the first layer's `in_features`/`in_channels`). `config` is the user's Config:
the enabled NP3xx rules run with its thresholds. `options` is a ProbeOptions (sub-batch size,
cache directory, exporters, ONNX Runtime optimisation level, constructor description for the
cache key).

A ProbeResult carries `context` (the ActivationContext the rules saw: per-value statistics, the
input summary, what was measured on), `findings` (finalised: selection and severity applied),
`backend`, `used_fallback`/`fallback_reason`, `peak_memory_bytes` (peak RSS rise during the probe),
`cache_hit`, `exporter` and `timings`. ProbeError means nothing could be measured; its message is
for the user.

    probe_gradients(module, inputs=None, labels=None, *, loss, optimizer, display_path, config,
                    steps, source_note) -> GradientResult
        Gradients and a few real optimizer steps on a copy of the model (NP401-NP405); see
        nnprobe.probe.gradients. GradientError means nothing could be measured.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "GradientError",
    "GradientResult",
    "OptimizerSettings",
    "ProbeError",
    "ProbeInputError",
    "ProbeInputs",
    "ProbeOptions",
    "ProbeResult",
    "load_probe_file",
    "parse_shape",
    "probe_gradients",
    "probe_module",
    "probe_onnx",
    "synthetic_inputs",
]

_HOME = {
    "GradientError": "nnprobe.probe.gradients",
    "GradientResult": "nnprobe.probe.gradients",
    "OptimizerSettings": "nnprobe.inspectors.gradient_context",
    "probe_gradients": "nnprobe.probe.gradients",
    "ProbeError": "nnprobe.probe.pipeline",
    "ProbeOptions": "nnprobe.probe.pipeline",
    "ProbeResult": "nnprobe.probe.pipeline",
    "probe_module": "nnprobe.probe.pipeline",
    "probe_onnx": "nnprobe.probe.pipeline",
    "ProbeInputError": "nnprobe.probe.inputs",
    "ProbeInputs": "nnprobe.probe.inputs",
    "load_probe_file": "nnprobe.probe.inputs",
    "parse_shape": "nnprobe.probe.inputs",
    "synthetic_inputs": "nnprobe.probe.inputs",
}


def __getattr__(name: str) -> Any:
    import importlib

    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'nnprobe.probe' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
