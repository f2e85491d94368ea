"""Every inspector path that runs the user's model, on every zoo model, hands it back unchanged: no
hook left behind, no parameter or buffer changed, each module's train/eval flag and the grad mode
restored, also when the model raises mid-forward (after pytorch/captum's hook-removal test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from zoo import ZOO, ZooEntry

from nnprobe.probe import ProbeOptions, probe_module
from nnprobe.probe.export import export_module
from nnprobe.probe.hooks import eager_probe
from nnprobe.probe.inputs import ProbeInputs

HOOK_DICTS = (
    "_forward_hooks",
    "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called",
    "_forward_pre_hooks",
    "_forward_pre_hooks_with_kwargs",
    "_backward_hooks",
    "_backward_pre_hooks",
    "_state_dict_hooks",
    "_load_state_dict_pre_hooks",
)


def _snapshot(model: torch.nn.Module) -> dict[str, Any]:
    return {
        "hooks": [
            (name, attr, len(getattr(sub, attr, {})))
            for name, sub in model.named_modules()
            for attr in HOOK_DICTS
        ],
        "global": [
            len(torch.nn.modules.module._global_forward_hooks),
            len(torch.nn.modules.module._global_forward_pre_hooks),
            len(torch.nn.modules.module._global_backward_hooks),
        ],
        "training": [(name, sub.training) for name, sub in model.named_modules()],
        "grad_mode": torch.is_grad_enabled(),
        "objects": [(n, id(p)) for n, p in model.named_parameters()],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters()],
        "grads": [(n, p.grad is None) for n, p in model.named_parameters()],
    }


def _values(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = dict(model.named_parameters())
    state.update(dict(model.named_buffers()))
    return {k: v.detach().clone() for k, v in state.items()}


def _paths(cache: Path) -> dict[str, Callable[[torch.nn.Module, torch.Tensor], object]]:
    return {
        "eager_probe": lambda m, x: eager_probe(m, ProbeInputs.from_arrays(x), sub_batch=4),
        "export": lambda m, x: export_module(m, x, cache_dir=cache),
        "probe_module": lambda m, x: probe_module(
            m, x, display_path="m.pt", options=ProbeOptions(cache_dir=cache, sub_batch=4)
        ),
        "probe_module_eager": lambda m, x: probe_module(
            m, x, display_path="m.pt", options=ProbeOptions(force_eager=True, sub_batch=4)
        ),
    }


PATHS = ["eager_probe", "export", "probe_module", "probe_module_eager"]


@pytest.mark.parametrize("grad_mode", [True, False], ids=["grad", "no_grad"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_model_is_handed_back_unchanged(
    entry: ZooEntry, path: str, grad_mode: bool, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = entry.build()
    model.train()
    # A mixed pattern, so restoring with one blanket model.train() would be caught.
    children = list(model.modules())
    children[-1].eval()
    x = entry.inputs(10)
    run = _paths(tmp_path_factory.getbasetemp() / "hook-cache")[path]
    before, values = _snapshot(model), _values(model)
    previous = torch.is_grad_enabled()
    torch.set_grad_enabled(grad_mode)
    try:
        before["grad_mode"] = grad_mode
        try:
            run(model, x)
        except Exception:
            assert entry.raises or not entry.exportable, f"{entry.name} should probe cleanly"
        after = _snapshot(model)
    finally:
        torch.set_grad_enabled(previous)
    assert after == before
    for name, tensor in _values(model).items():
        assert torch.equal(tensor, values[name]), name


def test_raising_model_raises_a_probe_error_naming_the_cause() -> None:
    from nnprobe.probe import ProbeError

    entry = next(e for e in ZOO if e.raises)
    with pytest.raises(ProbeError, match="boom after"):
        probe_module(
            entry.build(),
            entry.inputs(4),
            display_path="m.pt",
            options=ProbeOptions(use_cache=False),
        )


def test_eager_hooks_name_repeated_calls() -> None:
    entry = next(e for e in ZOO if e.name == "reused_relu")
    values = eager_probe(entry.build(), ProbeInputs.from_arrays(entry.inputs(8)))
    assert [v.name for v in values] == ["fc1", "act", "fc2", "act#2", "out"]
    assert [v.layer for v in values if v.kind == "relu"] == ["fc1", "fc2"]
    assert values[-1].is_output
