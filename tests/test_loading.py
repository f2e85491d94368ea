"""The loading matrix: every kind of file users have (ONNX, bare and bundled state_dicts, Lightning,
DDP, safetensors, TorchScript, pickled models, broken files) loads into a Checkpoint or fails with
the right NP9xx reason, and none of it is imported by the static front doors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("onnx")
safetensors_torch = pytest.importorskip("safetensors.torch")

from torch import nn  # noqa: E402

from nnprobe.core.config import Config, ConfigError, parse_config  # noqa: E402
from nnprobe.core.engine import inspect_paths  # noqa: E402
from nnprobe.probe import loading  # noqa: E402
from nnprobe.probe.loading import Checkpoint, LoadError, load_checkpoint  # noqa: E402


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc1 = nn.Linear(4 * 4 * 4, 16)
        self.fc2 = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)
        return self.fc2(torch.tanh(self.fc1(x)))


def tiny() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def load_error(path: Path, **kwargs: bool) -> LoadError:
    with pytest.raises(LoadError) as info:
        load_checkpoint(path, **kwargs)
    return info.value


def export_onnx(model: nn.Module, shape: tuple[int, ...], path: Path, **kwargs: object) -> Path:
    model.eval()
    torch.onnx.export(model, torch.randn(*shape), str(path), dynamo=False, **kwargs)
    return path


def test_onnx_weights_by_module_path_in_torch_layout(tmp_path: Path) -> None:
    model = tiny()
    ckpt = load_checkpoint(export_onnx(model, (1, 1, 8, 8), tmp_path / "m.onnx"))
    assert ckpt.kind == "onnx"
    # Conv+BatchNorm are folded in eval mode; the folded weight is named after its node.
    assert set(ckpt.tensors) == {
        "features.0.weight",
        "features.0.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    }
    np.testing.assert_array_equal(ckpt.tensors["fc1.weight"], model.fc1.weight.detach().numpy())
    layers = {layer.path: layer for layer in ckpt.layers()}
    assert {p: (layer.kind, layer.activation) for p, layer in layers.items()} == {
        "features.0": ("conv", "relu"),
        "fc1": ("linear", "tanh"),
        "fc2": ("linear", "linear"),
    }
    assert ckpt.model is not None and ckpt.model.graph.node
    assert ckpt.metadata["producer"].startswith("pytorch")


def test_onnx_matmul_weights_are_transposed_back_and_norms_flagged(tmp_path: Path) -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.Linear(4, 3, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))

    torch.manual_seed(0)
    model = Net()
    path = export_onnx(
        model.train(),
        (1, 1, 6, 6),
        tmp_path / "t.onnx",
        training=torch.onnx.TrainingMode.TRAINING,
        do_constant_folding=False,
    )
    ckpt = load_checkpoint(path)
    np.testing.assert_array_equal(ckpt.tensors["head.weight"], model.head.weight.detach().numpy())
    layers = {layer.path: layer for layer in ckpt.layers()}
    assert layers["conv"].activation == "relu" and layers["conv"].normalized
    assert layers["bn"].kind == "batchnorm"
    assert "bn.running_var" in ckpt.tensors


def test_bare_state_dict(tmp_path: Path) -> None:
    model = tiny()
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    ckpt = load_checkpoint(tmp_path / "sd.pt")
    assert ckpt.kind == "state_dict" and ckpt.container is None and ckpt.prefix == ""
    assert set(ckpt.tensors) == {k for k in model.state_dict() if "num_batches" not in k}
    assert ckpt.other["features.1.num_batches_tracked"].item() == 0
    kinds = {layer.path: layer.kind for layer in ckpt.layers()}
    assert kinds == {
        "features.0": "conv",
        "features.1": "batchnorm",
        "fc1": "linear",
        "fc2": "linear",
    }
    assert all(layer.activation is None for layer in ckpt.layers())
    assert ckpt.metadata == {} and ckpt.at_init is None


def test_legacy_non_zip_state_dict(tmp_path: Path) -> None:
    torch.save(mlp().state_dict(), tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert set(load_checkpoint(tmp_path / "old.pth").tensors) == {
        "0.weight",
        "0.bias",
        "2.weight",
        "2.bias",
    }


def test_model_optimizer_bundle_with_metadata(tmp_path: Path) -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    bundle = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "step": torch.tensor(120),
    }
    torch.save(bundle, tmp_path / "ckpt.pt")
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt.container == "model"
    assert set(ckpt.tensors) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert ckpt.metadata["epoch"] == 3 and ckpt.step == 120 and ckpt.at_init is False
    assert ckpt.metadata["lr"] == 0.05
    assert ckpt.metadata["momentum"] == 0.9
    assert ckpt.metadata["weight_decay"] == 5e-4


@pytest.mark.parametrize("key", ["model_state_dict", "net", "state_dict"])
def test_other_bundle_keys(tmp_path: Path, key: str) -> None:
    torch.save({key: mlp().state_dict(), "epoch": 0}, tmp_path / "b.pt")
    ckpt = load_checkpoint(tmp_path / "b.pt")
    assert ckpt.container == key and "0.weight" in ckpt.tensors
    # epoch 0 alone is ambiguous (saved after the first epoch?): not "at init"
    assert ckpt.epoch == 0 and ckpt.at_init is None


def test_lightning_checkpoint_strips_model_prefix(tmp_path: Path) -> None:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    torch.save(
        {
            "epoch": 0,
            "global_step": 0,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": state,
            "optimizer_states": [optimizer.state_dict()],
            "lr_schedulers": [],
            "hyper_parameters": {"hidden": 16, "lr": 1e-3},
        },
        tmp_path / "epoch=0-step=0.ckpt",
    )
    ckpt = load_checkpoint(tmp_path / "epoch=0-step=0.ckpt")
    assert ckpt.prefix == "model." and ckpt.container == "state_dict"
    assert set(ckpt.tensors) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert ckpt.at_init is True
    assert ckpt.metadata["lr"] == 1e-3 and ckpt.metadata["betas"] == (0.9, 0.999)
    assert ckpt.metadata["hyper_parameters"] == {"hidden": 16, "lr": 1e-3}
    assert ckpt.metadata["lightning_version"] == "2.4.0"


def test_ddp_and_compile_prefixes_strip_only_when_consistent(tmp_path: Path) -> None:
    state = mlp().state_dict()
    torch.save({f"module._orig_mod.{k}": v for k, v in state.items()}, tmp_path / "ddp.pt")
    ckpt = load_checkpoint(tmp_path / "ddp.pt")
    assert ckpt.prefix == "module._orig_mod." and "0.weight" in ckpt.tensors
    mixed = {f"model.{k}": v for k, v in state.items()} | {"criterion.weight": torch.ones(4)}
    torch.save(mixed, tmp_path / "mixed.pt")
    ckpt = load_checkpoint(tmp_path / "mixed.pt")
    assert ckpt.prefix == "" and "model.0.weight" in ckpt.tensors


def test_safetensors_with_bfloat16_and_metadata(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in mlp().state_dict().items()}
    state["0.weight"] = state["0.weight"].bfloat16()
    safetensors_torch.save_file(state, str(tmp_path / "m.safetensors"), metadata={"step": "0"})
    ckpt = load_checkpoint(tmp_path / "m.safetensors")
    assert ckpt.kind == "safetensors"
    assert ckpt.dtypes["0.weight"] == "bfloat16" and ckpt.tensors["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(ckpt.tensors["0.weight"], state["0.weight"].float().numpy())
    assert ckpt.at_init is True


def test_torchscript_archive_is_refused_with_its_weights_read_unrun(tmp_path: Path) -> None:
    """A TorchScript archive is a program: refused (NP902) unless opted in, its weights and
    layer activations still read, without running it."""
    torch.jit.script(mlp()).save(str(tmp_path / "scripted.pt"))
    error = load_error(tmp_path / "scripted.pt")
    assert error.code == "NP902" and "TorchScript" in error.message
    assert "--allow-pickle" in error.message
    ckpt = error.unrun
    assert ckpt is not None and ckpt.kind == "torchscript" and ckpt.model is None
    layers = {layer.path: layer.activation for layer in ckpt.layers()}
    assert layers == {"0": "relu", "2": "linear"}


def test_torchscript_archive_loads_with_activations_in_the_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.jit.script(mlp()).save(str(tmp_path / "scripted.pt"))
    assert load_error(tmp_path / "scripted.pt", allow_pickle=True).code == "NP902"  # not here
    monkeypatch.setattr(loading, "_PROGRAMS_HERE", True)  # what nnprobe.worker sets for itself
    ckpt = load_checkpoint(tmp_path / "scripted.pt", allow_pickle=True)
    assert ckpt.kind == "torchscript" and ckpt.model is not None
    layers = {layer.path: layer.activation for layer in ckpt.layers()}
    assert layers == {"0": "relu", "2": "linear"}


def test_full_pickled_model_is_refused(tmp_path: Path) -> None:
    torch.save(tiny(), tmp_path / "model.pt")
    error = load_error(tmp_path / "model.pt")
    assert error.code == "NP902"
    assert "TinyNet" in error.message
    assert "torch.save(model.state_dict(), path)" in error.message
    assert "--allow-pickle" in error.message


def test_full_pickled_model_loads_when_allowed(tmp_path: Path) -> None:
    torch.save(tiny(), tmp_path / "model.pt")
    ckpt = load_checkpoint(tmp_path / "model.pt", allow_pickle=True)
    assert ckpt.kind == "pickled-model" and isinstance(ckpt.model, TinyNet)
    layers = {layer.path: layer for layer in ckpt.layers()}
    assert layers["features.0"].activation == "relu" and layers["features.0"].normalized


def test_pickled_model_whose_class_is_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "gone_module.py").write_text(
        "import torch\nclass Gone(torch.nn.Linear):\n    pass\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module  # type: ignore[import-not-found]

    torch.save(gone_module.Gone(2, 2), tmp_path / "gone.pt")
    monkeypatch.delitem(sys.modules, "gone_module")
    (tmp_path / "gone_module.py").unlink()
    error = load_error(tmp_path / "gone.pt", allow_pickle=True)
    assert error.code == "NP901" and "not importable" in error.message


def test_truncated_zip_checkpoint(tmp_path: Path) -> None:
    torch.save(tiny().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    error = load_error(tmp_path / "cut.pt")
    assert error.code == "NP901" and "truncated" in error.message


def test_truncated_legacy_checkpoint(tmp_path: Path) -> None:
    torch.save(tiny().state_dict(), tmp_path / "f.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "f.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    error = load_error(tmp_path / "cut.pt")
    assert error.code == "NP901" and "torch.load failed" in error.message


@pytest.mark.parametrize("suffix", [".pt", ".ckpt", ".safetensors"])
def test_random_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    error = load_error(path)
    assert error.code == "NP901" and "not a" in error.message


def test_random_bytes_and_truncation_in_onnx(tmp_path: Path) -> None:
    (tmp_path / "noise.onnx").write_bytes(np.random.default_rng(1).bytes(4096))
    error = load_error(tmp_path / "noise.onnx")
    assert error.code == "NP901" and "ONNX" in error.message
    data = export_onnx(tiny(), (1, 1, 8, 8), tmp_path / "m.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    error = load_error(tmp_path / "cut.onnx")
    assert error.code == "NP901" and "ONNX" in error.message


@pytest.mark.parametrize("suffix", [".pt", ".onnx", ".safetensors"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    error = load_error(tmp_path / f"empty{suffix}")
    assert error.code == "NP901" and error.message == "empty file (0 bytes)"


def test_data_files_are_not_weights(tmp_path: Path) -> None:
    torch.save({"x": torch.randn(4, 8), "y": torch.arange(4)}, tmp_path / "probe.pt")
    torch.save(torch.randn(4, 8), tmp_path / "batch.pt")
    for name in ("probe.pt", "batch.pt"):
        error = load_error(tmp_path / name)
        assert error.code == "NP901" and error.not_weights
    # A directory walk skips them; named explicitly, they are reported.
    config = Config.default(root=tmp_path)
    assert inspect_paths([str(tmp_path)], config).findings == []
    named = inspect_paths([str(tmp_path / "batch.pt")], config).findings
    assert [f.code for f in named] == ["NP901"] and "single tensor" in named[0].message


def test_checkpoint_is_a_plain_record(tmp_path: Path) -> None:
    torch.save(mlp().state_dict(), tmp_path / "a.pt")
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert isinstance(ckpt, Checkpoint) and ckpt.display == (tmp_path / "a.pt").as_posix()


def test_allow_pickle_config_key_and_cli_flag(tmp_path: Path) -> None:
    assert parse_config({"allow-pickle": True}).allow_pickle is True
    assert Config.default().allow_pickle is False
    with pytest.raises(ConfigError, match="allow-pickle must be true or false"):
        parse_config({"allow-pickle": "yes"})
    torch.save(tiny(), tmp_path / "model.pt")
    from nnprobe.cli import main

    assert main(["inspect", str(tmp_path / "model.pt"), "--select", "NP9", "--quiet"]) == 1
    assert main(["inspect", str(tmp_path / "model.pt"), "--allow-pickle", "--quiet"]) == 0


def _run(code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
        env=env,
    ).stdout


def test_static_front_doors_import_no_probe_dependencies(tmp_path: Path) -> None:
    out = _run(
        """
        import json, sys
        import nnprobe.cli, nnprobe.inspectors
        from nnprobe.core.engine import handled_suffixes
        heavy = [m for m in ("torch", "onnx", "onnxruntime", "numpy", "safetensors")
                 if m in sys.modules]
        print(json.dumps([heavy, sorted(handled_suffixes())]))
        """,
        tmp_path,
    )
    heavy, suffixes = json.loads(out)
    assert heavy == []
    assert {".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx"} <= set(suffixes)


def test_onnx_and_safetensors_load_without_torch(tmp_path: Path) -> None:
    export_onnx(tiny(), (1, 1, 8, 8), tmp_path / "m.onnx")
    safetensors_torch.save_file(
        {k: v.contiguous() for k, v in mlp().state_dict().items()}, str(tmp_path / "m.safetensors")
    )
    torch.save(mlp().state_dict(), tmp_path / "m.pt")
    out = _run(
        """
        import json, sys
        sys.modules["torch"] = None  # import torch now raises ImportError
        from nnprobe.core.config import Config
        from nnprobe.core.engine import inspect_paths
        from nnprobe.probe.loading import load_checkpoint
        kinds = [load_checkpoint(n).kind for n in ("m.onnx", "m.safetensors")]
        report = inspect_paths(["m.pt"], Config.default())
        print(json.dumps([kinds, [(f.code, f.message) for f in report.findings]]))
        """,
        tmp_path,
    )
    kinds, findings = json.loads(out)
    assert kinds == ["onnx", "safetensors"]
    assert [code for code, _ in findings] == ["NP901"]
    assert "nnprobe[probe]" in findings[0][1]
