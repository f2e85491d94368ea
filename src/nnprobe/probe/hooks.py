"""The eager fallback: forward hooks on the model's layers collect the same statistics as the ONNX
Runtime probe when the model cannot be exported (data-dependent control flow, unsupported ops).

Hooks borrow the user's model, so they must give it back exactly as they found it: every hook
removed, no parameter or buffer changed, each module's train/eval flag and the global grad mode
restored, also when the forward raises half way. `eager_probe` is the only place that registers
hooks, and it does all of that in one `finally`.

Only modules of a known layer kind are hooked (Linear, Conv, norms, recurrent layers, activation
modules), the same values the ONNX path tracks; a functional `F.relu` in a forward has no module and
is seen only by the ONNX path. A module called twice yields two values, `act` and `act#2`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnprobe.inspectors.activation_context import (
    ACTIVATION_KINDS,
    NORM_KINDS,
    WEIGHT_KINDS,
    ValueSummary,
)
from nnprobe.probe.inputs import ProbeInputs
from nnprobe.probe.modules import module_kind
from nnprobe.probe.runner import DEFAULT_SUB_BATCH, sub_batches
from nnprobe.probe.stats import StatsSpec, ValueStats

if TYPE_CHECKING:
    import torch

_CHANNEL_FIRST = ("conv", "conv_transpose")


class _Value:
    def __init__(self, key: str, module: str, kind: str, op: str, order: int) -> None:
        self.key, self.module, self.kind, self.op, self.order = key, module, kind, op, order
        self.source: str | None = None
        self.layer: str | None = None
        self.unit_axis = "auto"
        self.correlate = False
        self.is_output = False
        self.stats: ValueStats | None = None


def _first_tensor(output: Any) -> torch.Tensor | None:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output:
        return _first_tensor(output[0])
    return None


def eager_probe(
    module: torch.nn.Module,
    inputs: ProbeInputs,
    *,
    spec: StatsSpec | None = None,
    sub_batch: int = DEFAULT_SUB_BATCH,
) -> list[ValueSummary]:
    """Statistics of every hooked layer's output over all probe inputs, in eval mode, no grad."""
    import numpy as np
    import torch

    names: dict[int, str] = {}
    for name, sub in module.named_modules():
        names.setdefault(id(sub), name)
    values: dict[str, _Value] = {}
    state: dict[str, Any] = {"calls": {}, "previous": None, "last_weight": None, "image": None}
    state["last_output"] = None

    def hook(sub: torch.nn.Module, args: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        if tensor is None or not tensor.is_floating_point():
            return
        path = names.get(id(sub), "")
        kind = module_kind(sub) or "other"
        calls: dict[str, int] = state["calls"]
        calls[path] = calls.get(path, 0) + 1
        key = path if calls[path] == 1 else f"{path}#{calls[path]}"
        value = values.get(key)
        previous: _Value | None = state["previous"]
        if value is None:
            value = _Value(key, path, kind, type(sub).__name__, len(values))
            value.source = previous.key if previous is not None else None
            if kind in WEIGHT_KINDS:
                value.layer = path
            else:
                value.layer = state["last_weight"]
            if kind in _CHANNEL_FIRST or (kind == "norm" and "BatchNorm" in value.op):
                value.unit_axis = "channel"
            elif kind in ("linear", "recurrent", "norm"):
                value.unit_axis = "last"
            elif previous is not None:
                value.unit_axis = previous.unit_axis
            first_conv = not any(v.kind in _CHANNEL_FIRST for v in values.values())
            if kind == "conv" and previous is None and first_conv:
                value.correlate = True
            elif previous is not None and kind in ACTIVATION_KINDS:
                # The activation right after the first conv (through its norm layer, if any).
                value.correlate = previous.correlate or (
                    previous.kind in NORM_KINDS
                    and previous.source is not None
                    and values[previous.source].correlate
                )
            value.stats = ValueStats(
                kind, unit_axis=value.unit_axis, spec=spec, correlate_input=value.correlate
            )
            values[key] = value
        if kind in WEIGHT_KINDS:
            state["last_weight"] = path
        state["previous"] = value
        state["last_output"] = (key, tensor)
        array = tensor.detach().float().cpu().numpy()
        assert value.stats is not None
        value.stats.update(array, state["image"] if value.correlate else None)

    training = {sub: sub.training for sub in module.modules()}
    handles = []
    try:
        for sub in module.modules():
            if module_kind(sub) is not None:
                handles.append(sub.register_forward_hook(hook))
        module.eval()
        with torch.no_grad():
            for start, end in sub_batches(inputs.count, sub_batch):
                batch = np.ascontiguousarray(inputs.x[start:end])
                state["calls"], state["previous"], state["last_weight"] = {}, None, None
                state["image"] = batch if batch.ndim == 4 else None
                state["last_output"] = None
                output = module(torch.from_numpy(batch))
                final = _first_tensor(output)
                last = state["last_output"]
                if last is not None and final is not None and last[1] is final:
                    values[last[0]].is_output = True
                state["last_output"] = None
                del output, final
    finally:
        for handle in handles:
            handle.remove()
        for sub, flag in training.items():
            sub.training = flag
    return [
        v.stats.summary(
            name=v.key,
            module=v.module,
            op=v.op,
            order=v.order,
            layer=v.layer,
            source=v.source,
            is_output=v.is_output,
        )
        for v in values.values()
        if v.stats is not None
    ]
