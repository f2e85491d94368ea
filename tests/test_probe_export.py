"""Export once per architecture: the on-disk cache, re-binding weights for a new checkpoint, and the
refusals (data-dependent control flow) that send a model to the eager fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo import DataDependent, SmallCNN, ZooEntry

from nnprobe.core.finding import Severity
from nnprobe.probe import ProbeOptions, probe_module
from nnprobe.probe import export as export_mod
from nnprobe.probe.export import ExportError, architecture_key, bind_weights, export_module

CNN = ZooEntry("cnn", SmallCNN, (1, 8, 8))


def _stds(result) -> list[float]:
    return [v.std for v in result.values]


def test_second_checkpoint_rebinds_and_matches_a_fresh_export(tmp_path: Path) -> None:
    options = ProbeOptions(cache_dir=tmp_path)
    x = CNN.inputs(32).numpy()
    first = probe_module(CNN.build(seed=0), x, display_path="a.pt", options=options)
    assert not first.cache_hit
    second_model = CNN.build(seed=1)
    with torch.no_grad():
        second_model.features[3].running_var.fill_(4.0)  # equal to nothing else: must be bound
    second = probe_module(second_model, x, display_path="b.pt", options=options)
    assert second.cache_hit and second.exporter == "torchscript"
    fresh = probe_module(
        second_model, x, display_path="b.pt", options=ProbeOptions(use_cache=False)
    )
    assert _stds(second) == pytest.approx(_stds(fresh), rel=1e-6, abs=1e-9)
    assert _stds(second) != pytest.approx(_stds(first), rel=1e-3)
    eager = probe_module(
        second_model, x, display_path="b.pt", options=ProbeOptions(force_eager=True)
    )
    assert _stds(second) == pytest.approx(_stds(eager), rel=1e-3, abs=1e-5)


def test_cache_entries_are_complete_small_and_leave_no_temporary_files(tmp_path: Path) -> None:
    model = CNN.build()
    export_module(model, CNN.inputs(3), cache_dir=tmp_path)
    files = sorted(p.name for p in (tmp_path / "graphs").iterdir())
    assert len(files) == 1 and files[0].endswith(".graph")  # one file: no pair to get out of step
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert (tmp_path / "graphs" / files[0]).stat().st_size < weights  # weights are not stored


def test_damaged_cache_entry_is_exported_again(tmp_path: Path) -> None:
    model = CNN.build()
    first = export_module(model, CNN.inputs(3), cache_dir=tmp_path)
    (tmp_path / "graphs" / f"{first.key}.graph").write_bytes(b"\x00garbage")
    again = export_module(model, CNN.inputs(3), cache_dir=tmp_path)
    assert not again.cache_hit
    assert export_module(model, CNN.inputs(3), cache_dir=tmp_path).cache_hit


def test_key_follows_architecture_and_input_signature() -> None:
    from zoo import MLP

    x = torch.randn(3, 16)
    assert architecture_key(MLP(), x) == architecture_key(MLP(), x)
    assert architecture_key(MLP(), x) != architecture_key(MLP(width=64), x)
    assert architecture_key(MLP(), x) != architecture_key(MLP(), x, arch="train.py:MLP(depth=4)")
    cnn = SmallCNN()
    assert architecture_key(cnn, torch.randn(3, 1, 8, 8)) != architecture_key(
        cnn, torch.randn(3, 1, 16, 16)
    )


def test_binding_needs_every_weight(tmp_path: Path) -> None:
    exported = export_module(CNN.build(), CNN.inputs(3), use_cache=False)
    other = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ExportError, match="no weights for"):
        bind_weights(exported, other)


def test_data_dependent_control_flow_falls_back_to_eager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = ZooEntry("dd", DataDependent, (16,))
    options = ProbeOptions(cache_dir=tmp_path, exporters=("torchscript",))
    result = probe_module(
        entry.build(), entry.inputs(20).numpy(), display_path="m.pt", options=options
    )
    assert result.used_fallback and result.backend == "eager"
    assert "data-dependent control flow" in (result.fallback_reason or "")
    (np903,) = [f for f in result.findings if f.code == "NP903"]
    assert "data-dependent control flow" in np903.message
    assert np903.severity is Severity.INFO
    assert [v.module for v in result.values] == ["up", "act", "out"]

    def must_not_export(*args: object) -> None:
        raise AssertionError("the known failure was exported again")

    monkeypatch.setattr(export_mod, "_export_copy", must_not_export)
    again = probe_module(
        entry.build(), entry.inputs(20).numpy(), display_path="m.pt", options=options
    )
    assert again.used_fallback and again.fallback_reason == result.fallback_reason


def test_batch_size_fixed_in_the_trace_is_refused() -> None:
    class Fixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = int(x.shape[0])  # a Python int: the trace records 2
            return self.fc(x).reshape(n * 2, 2)

    with pytest.raises(ExportError, match="batch size 3|disagrees|shape"):
        export_module(Fixed(), torch.randn(3, 4), exporters=("torchscript",), use_cache=False)


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NNPROBE_CACHE_DIR", str(tmp_path / "c"))
    assert export_mod.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NNPROBE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert export_mod.default_cache_dir().parts[-2:] == ("xdg", "nnprobe")
