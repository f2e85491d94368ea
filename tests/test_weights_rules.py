"""NP201-NP208 on real models (initialised and trained here on scikit-learn's digits) and on
planted faults, and the CLI end to end on a directory mixing a training script and checkpoints."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

import torch.nn.functional as F  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from nnprobe.cli import main  # noqa: E402
from nnprobe.core.config import Config  # noqa: E402
from nnprobe.core.finding import Finding, Severity  # noqa: E402
from nnprobe.inspectors.checkpoint import check_weights  # noqa: E402
from nnprobe.probe.loading import Checkpoint, load_checkpoint  # noqa: E402
from nnprobe.probe.weight_stats import roughness  # noqa: E402

RELU_HINTS = {"fc1": "relu", "fc2": "relu", "fc3": "linear"}


class WideningMLP(nn.Module):
    """64 -> 256 -> 256 -> 10 with ReLU: Glorot's variance is 1/5 of He's on fc1, 1/2 on fc2."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def widening_mlp(init: Callable[[torch.Tensor], object] | None = None) -> WideningMLP:
    torch.manual_seed(0)
    model = WideningMLP()
    if init is not None:
        for layer in (model.fc1, model.fc2, model.fc3):
            init(layer.weight)
            nn.init.zeros_(layer.bias)
    return model


def kaiming_relu(w: torch.Tensor) -> object:
    return nn.init.kaiming_normal_(w, nonlinearity="relu")


def checkpoint(
    state: nn.Module | Mapping[str, object],
    path: str = "model.pt",
    metadata: Mapping[str, object] | None = None,
) -> Checkpoint:
    """A Checkpoint built in memory, as the loader would build it from a state_dict."""
    if isinstance(state, nn.Module):
        state = state.state_dict()
    tensors: dict[str, np.ndarray] = {}
    other: dict[str, np.ndarray] = {}
    for name, value in state.items():
        array = value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        (tensors if array.dtype.kind == "f" else other)[name] = array
    return Checkpoint(Path(path), "state_dict", tensors, metadata=dict(metadata or {}), other=other)


def run(
    code: str,
    ckpt: Checkpoint,
    hints: Mapping[str, str] | None = None,
    **options: object,
) -> list[Finding]:
    config = Config.default().with_overrides(select=[code])
    if options:
        config.rules[code] = {key.replace("_", "-"): value for key, value in options.items()}
    return [f for f in check_weights(ckpt, config, hints) if f.code == code]


def modules(findings: list[Finding]) -> list[str | None]:
    return [f.module for f in findings]


# --- digits, the real data every calibration here is measured on --------------------------------


@pytest.fixture(scope="session")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = load_digits(return_X_y=True)
    images = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
    images = (images - images.mean()) / images.std()
    return images, torch.tensor(y)


@pytest.fixture(scope="session")
def digits_cnn(digits: tuple[torch.Tensor, torch.Tensor]) -> dict[str, object]:
    """A CNN with a 5x5 first layer trained on digits upsampled to 16x16 until its filters are
    smooth: the layer at init and after training, and the training accuracy."""
    images, labels = digits
    x = F.interpolate(images, size=(16, 16), mode="bilinear", align_corners=False)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, 10),
    )
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 256):
            batch = order[start : start + 256]
            loss = F.cross_entropy(model(x[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == labels).float().mean())
    return {"initial": initial, "trained": model.state_dict(), "accuracy": accuracy}


@pytest.fixture(scope="session")
def trained_xavier_mlp(digits: tuple[torch.Tensor, torch.Tensor]) -> WideningMLP:
    """The Glorot-initialised widening MLP after 20 epochs of SGD on digits."""
    images, labels = digits
    x = images.reshape(len(images), -1)
    model = widening_mlp(nn.init.xavier_uniform_)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            loss = F.cross_entropy(model(x[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


# --- NP201 init-scale-mismatch ---------------------------------------------------------------


def test_np201_kaiming_for_relu_passes_at_step_0() -> None:
    ckpt = checkpoint(widening_mlp(kaiming_relu), metadata={"step": 0})
    assert run("NP201", ckpt, RELU_HINTS) == []


def test_np201_xavier_before_relu_fails_where_glorot_is_far_from_he() -> None:
    ckpt = checkpoint(widening_mlp(nn.init.xavier_uniform_), metadata={"step": 0})
    findings = run("NP201", ckpt, RELU_HINTS)
    # fc1 widens 64 -> 256: Glorot's variance is 1/5 of He's. fc2 is square (1/2, within bound).
    assert modules(findings) == ["fc1"]
    message = findings[0].message
    assert "`fc1` (linear 64->256, feeds relu)" in message
    assert "He 2/fan_in" in message and "F = 5" in message and "saved at step 0" in message
    assert "kaiming_normal_" in message


def test_np201_normal_std_1_fails_on_every_layer() -> None:
    ckpt = checkpoint(widening_mlp(lambda w: nn.init.normal_(w, std=1.0)))
    findings = run("NP201", ckpt, RELU_HINTS)
    assert modules(findings) == ["fc1", "fc2", "fc3"]
    # No step in the file: judged because the weights still look freshly initialised.
    assert all("still look freshly initialised: normal entries" in f.message for f in findings)
    assert "LeCun 1/fan_in" in findings[2].message or "Glorot" in findings[2].message


def test_np201_is_silent_without_activations_and_on_torch_default() -> None:
    assert run("NP201", checkpoint(widening_mlp(nn.init.xavier_uniform_))) == []
    default = checkpoint(widening_mlp(), metadata={"step": 0})
    assert run("NP201", default, RELU_HINTS) == []
    flagged = run("NP201", default, RELU_HINTS, flag_torch_default=True)
    assert modules(flagged) == ["fc1", "fc2", "fc3"]


def test_np201_leaves_trained_weights_alone(trained_xavier_mlp: WideningMLP) -> None:
    ckpt = checkpoint(trained_xavier_mlp)
    assert run("NP201", ckpt, RELU_HINTS) == []


def test_np201_reads_activations_from_onnx(tmp_path: Path) -> None:
    model = widening_mlp(nn.init.xavier_uniform_).eval()
    torch.onnx.export(model, torch.randn(1, 64), str(tmp_path / "m.onnx"), dynamo=False)
    findings = run("NP201", load_checkpoint(tmp_path / "m.onnx"))
    assert modules(findings) == ["fc1"]
    assert findings[0].path == (tmp_path / "m.onnx").as_posix()


# --- NP202 non-finite-weights ----------------------------------------------------------------


def test_np202_planted_nan_and_inf() -> None:
    model = widening_mlp(kaiming_relu)
    with torch.no_grad():
        model.fc2.weight[0, :3] = float("nan")
        model.fc2.bias[1] = float("inf")
    findings = run("NP202", checkpoint(model))
    assert modules(findings) == ["fc2"]
    assert findings[0].severity is Severity.ERROR
    assert findings[0].message == (
        "`fc2` holds non-finite values: weight 3 NaN of 65,536; bias 1 +inf of 256"
    )


def test_np202_ignores_additive_attention_masks() -> None:
    mask = torch.full((8, 8), float("-inf")).triu(1)
    state = {"attn.causal_mask": mask, "attn.proj.weight": torch.randn(8, 8)}
    assert run("NP202", checkpoint(state)) == []


# --- NP203 exploding-weights -----------------------------------------------------------------


def test_np203_large_weights_and_the_fp16_range(tmp_path: Path) -> None:
    model = widening_mlp(kaiming_relu)
    with torch.no_grad():
        model.fc3.weight[0, 0] = 4.2e3
    findings = run("NP203", checkpoint(model))
    assert modules(findings) == ["fc3"] and "max |w| = 4.2e+03" in findings[0].message
    assert findings[0].severity is Severity.WARNING
    from safetensors.torch import save_file

    with torch.no_grad():
        model.fc3.weight[0, 0] = 7e4
    save_file(
        {k: v.bfloat16().contiguous() for k, v in model.state_dict().items()},
        str(tmp_path / "m.safetensors"),
    )
    findings = run("NP203", load_checkpoint(tmp_path / "m.safetensors"))
    assert findings[0].severity is Severity.ERROR and "float16 range" in findings[0].message
    ignored = run("NP203", load_checkpoint(tmp_path / "m.safetensors"), half_precision="never")
    assert ignored[0].severity is Severity.WARNING


# --- NP204 noisy-filters: calibrated on a CNN trained on digits ------------------------------


def test_np204_calibration_trained_filters_are_smoother_than_init(
    digits_cnn: dict[str, object],
) -> None:
    assert digits_cnn["accuracy"] > 0.97
    initial = digits_cnn["initial"]["0.weight"].numpy()  # type: ignore[index]
    trained = digits_cnn["trained"]["0.weight"].numpy()  # type: ignore[index]
    init_score, filters = roughness(initial)
    trained_score, _ = roughness(trained)
    assert filters == 8
    # Measured: init 0.94, trained 0.45. The default threshold 0.7 sits between, with margin.
    assert init_score > 0.85
    assert trained_score < 0.55
    assert init_score - 0.7 > 0.1 and 0.7 - trained_score > 0.1


def test_np204_flags_the_layer_at_init_and_not_after_training(
    digits_cnn: dict[str, object],
) -> None:
    noisy = run("NP204", checkpoint(digits_cnn["initial"]))  # type: ignore[arg-type]
    assert modules(noisy) == ["0"]
    assert "first conv layer `0` (conv 1->8, 5x5): its 8 filters look like noise" in (
        noisy[0].message
    )
    assert run("NP204", checkpoint(digits_cnn["trained"])) == []  # type: ignore[arg-type]
    # Saved at step 0, noise is expected: silent. A stricter threshold flags the trained layer.
    assert run("NP204", checkpoint(digits_cnn["initial"], metadata={"step": 0})) == []  # type: ignore[arg-type]
    assert run("NP204", checkpoint(digits_cnn["trained"]), max_roughness=0.3) != []  # type: ignore[arg-type]


def test_np204_skips_small_kernels() -> None:
    torch.manual_seed(0)
    assert run("NP204", checkpoint(nn.Conv2d(3, 16, 3))) == []
    assert run("NP204", checkpoint(nn.Conv2d(3, 16, 3)), min_kernel=3) != []


# --- NP205 dead-weights ----------------------------------------------------------------------


def test_np205_zero_hidden_layer_and_dead_units() -> None:
    model = widening_mlp(kaiming_relu)
    with torch.no_grad():
        model.fc1.weight.zero_()
        model.fc2.weight[[3, 7]] = 0.0
    findings = run("NP205", checkpoint(model))
    assert modules(findings) == ["fc1", "fc2"]
    assert "never become different" in findings[0].message
    assert "2 of 256 output units have every weight below 1e-05 (3, 7)" in findings[1].message


def test_np205_zero_output_layer_is_a_legitimate_init() -> None:
    torch.manual_seed(0)
    regression = nn.Linear(64, 10)
    nn.init.zeros_(regression.weight)
    assert run("NP205", checkpoint(regression)) == []
    assert run("NP206", checkpoint(regression)) == []
    trained = run("NP205", checkpoint(regression, metadata={"global_step": 500}))
    assert modules(trained) == [None] and "outputs only its bias" in trained[0].message


def test_np205_mostly_zero_layer() -> None:
    model = widening_mlp(kaiming_relu)
    with torch.no_grad():
        model.fc2.weight[:, 5:] = 0.0
    findings = run("NP205", checkpoint(model))
    assert modules(findings) == ["fc2"] and "98.0% of its 65,536 weights" in findings[0].message


# --- NP206 weight-variance-out-of-range ------------------------------------------------------


def test_np206_variance_bounds() -> None:
    model = widening_mlp(kaiming_relu)
    with torch.no_grad():
        model.fc1.weight.normal_(0, 1e-4)
        model.fc3.weight.normal_(0, 5.0)
    findings = run("NP206", checkpoint(model))
    assert modules(findings) == ["fc1", "fc3"]
    assert "is below 1e-05" in findings[0].message and "is above 10" in findings[1].message
    assert run("NP206", checkpoint(widening_mlp(kaiming_relu))) == []


# --- NP207 spectral-alpha --------------------------------------------------------------------


def test_np207_heavy_and_flat_spectra() -> None:
    rng = np.random.default_rng(0)
    heavy = rng.standard_t(1.5, size=(256, 256)).astype(np.float32)
    hadamard = np.array([[1.0]])
    while hadamard.shape[0] < 128:
        hadamard = np.block([[hadamard, hadamard], [hadamard, -hadamard]])
    flat = (hadamard / np.sqrt(128) + rng.normal(0, 1e-3, (128, 128))).astype(np.float32)
    fresh = rng.normal(0, 0.05, (256, 256)).astype(np.float32)
    state = {"heavy.weight": heavy, "flat.weight": flat, "fresh.weight": fresh}
    findings = run("NP207", checkpoint(state))
    assert modules(findings) == ["heavy", "flat"]
    assert "below 2: very heavy-tailed" in findings[0].message
    assert "above 6: under-trained" in findings[1].message
    assert all(f.severity is Severity.INFO for f in findings)
    assert run("NP207", checkpoint(state), min_dim=512) == []


# --- NP208 degenerate-batchnorm --------------------------------------------------------------


def test_np208_zero_running_var() -> None:
    bn = nn.BatchNorm2d(16)
    with torch.no_grad():
        bn.running_var[:3] = 0.0
        bn.running_mean.fill_(0.1)
    findings = run("NP208", checkpoint(nn.Sequential(nn.Conv2d(3, 16, 3), bn)))
    assert modules(findings) == ["1"]
    assert "3 of 16 channels have running_var below 1e-08" in findings[0].message


def test_np208_zero_gamma_only_when_statistics_moved() -> None:
    bn = nn.BatchNorm1d(8)
    nn.init.zeros_(bn.weight)  # zero-init of a residual block's last BN: deliberate
    assert run("NP208", checkpoint(bn)) == []
    with torch.no_grad():
        bn.running_var.fill_(0.5)
    findings = run("NP208", checkpoint(bn))
    assert "scale (gamma) is below 1e-05 in every channel" in findings[0].message


def test_np208_statistics_never_updated_after_training() -> None:
    findings = run("NP208", checkpoint(nn.BatchNorm1d(8), metadata={"step": 300}))
    assert "never updated although the file was saved at step 300" in findings[0].message
    assert run("NP208", checkpoint(nn.BatchNorm1d(8))) == []


def test_np208_nan_running_var_is_an_error() -> None:
    bn = nn.BatchNorm1d(4)
    with torch.no_grad():
        bn.running_var[0] = float("nan")
    findings = run("NP208", checkpoint(bn))
    assert findings[0].severity is Severity.ERROR


# --- the CLI on a directory mixing a script and checkpoints ----------------------------------


TRAIN = """\
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 256)
        self.fc2 = nn.Linear(256, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


if __name__ == "__main__":
    model = Net()
    torch.save(model.state_dict(), "runs/ckpt_0.pt")
"""


def test_cli_inspects_a_directory_of_script_and_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "runs").mkdir(parents=True)
    (project / "train.py").write_text(TRAIN, encoding="utf-8")
    torch.manual_seed(0)
    net = nn.Sequential()
    net.fc1 = nn.Linear(64, 256)
    net.act = nn.ReLU()
    net.fc2 = nn.Linear(256, 10)
    nn.init.xavier_uniform_(net.fc1.weight)
    torch.onnx.export(
        net.eval(), torch.randn(1, 64), str(project / "runs" / "init.onnx"), dynamo=False
    )
    diverged = {k: v.clone() for k, v in net.state_dict().items()}
    diverged["fc2.weight"][0, 0] = float("nan")
    torch.save({"model": diverged, "optimizer": {}, "epoch": 7}, project / "runs" / "ckpt_7.pt")
    bn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():
        bn[1].running_var.zero_()
    torch.save(bn.state_dict(), project / "runs" / "bn.pth")
    (project / "runs" / "broken.ckpt").write_bytes(b"PK\x03\x04" + b"\x00" * 100)

    monkeypatch.chdir(tmp_path)
    code = main(["inspect", "project", "--no-color"])
    out = capsys.readouterr().out
    assert code == 1
    assert "project/runs/init.onnx:1:1: NP201 [warning] `fc1` (linear 64->256, feeds relu)" in out
    assert "project/runs/ckpt_7.pt:1:1: NP202 [error] `fc2` holds non-finite values" in out
    assert "project/runs/bn.pth:1:1: NP208 [warning] `1` (batchnorm): 4 of 4 channels" in out
    assert "project/runs/broken.ckpt:1:1: NP901 [error] could not read" not in out
    assert "project/runs/broken.ckpt:1:1: NP901 [error] truncated or corrupt zip archive" in out
    assert "files" in out.splitlines()[-1]

    assert main(["inspect", "project", "--output-format", "json", "--select", "NP2"]) == 1
    import json

    report = json.loads(capsys.readouterr().out)
    by_code = {f["code"]: f for f in report["findings"]}
    assert by_code["NP201"]["module"] == "fc1" and by_code["NP201"]["evidence"] == "weights"
    assert by_code["NP202"]["module"] == "fc2"


def test_rule_crash_is_isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    from nnprobe.inspectors.weights import DeadWeights

    def boom(self: object, ctx: object) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(DeadWeights, "check", boom)
    config = Config.default().with_overrides(select=["NP205", "NP202", "NP907"])
    model = widening_mlp(kaiming_relu)
    with torch.no_grad():
        model.fc1.weight[0, 0] = float("nan")
    codes = sorted(f.code for f in check_weights(checkpoint(model), config))
    assert codes == ["NP202", "NP907"]


def test_weight_context_statistics_are_cached() -> None:
    from nnprobe.inspectors.weights import WeightContext

    ctx = WeightContext.build(checkpoint(widening_mlp(kaiming_relu)), activation_hints=RELU_HINTS)
    assert ctx.signature("fc1.weight") is ctx.signature("fc1.weight")
    assert [layer.activation for layer in ctx.layers] == ["relu", "relu", "linear"]
    assert textwrap.dedent(ctx.path) == "model.pt"
