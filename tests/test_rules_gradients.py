"""NP401-NP405 on real models: the seed's diabetes regression at lr 0.3 vs 0.1, a digits MLP
trained here, and models with planted faults; plus the prober's leave-the-model-alone invariant."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache

import numpy as np
import pytest
import torch
from digits_models import accuracy, digits, mlp, trained
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from zoo import ZOO, ZooEntry

from nnprobe.core.config import Config
from nnprobe.core.finding import Confidence, Finding, Severity
from nnprobe.inspectors.gradient_context import GradientContext, LayerGradient
from nnprobe.inspectors.gradients import UpdateRatio
from nnprobe.probe import ProbeInputs
from nnprobe.probe.gradients import LOSSES, GradientError, OptimizerSettings, probe_gradients

CODES = ("NP401", "NP402", "NP403", "NP404", "NP405")


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """These models are tiny: on a busy 2-core machine torch's intra-op threads only contend
    (20 steps of a 64-32-10 MLP: 0.76 s on 2 threads, 0.04 s on 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    """The training split of examples/diabetes_sgd_learning_rate.py, standardised as it does."""
    x, y = load_diabetes(return_X_y=True)
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=0)
    xs = StandardScaler().fit(x_train).transform(x_train)
    ys = StandardScaler().fit(y_train.reshape(-1, 1)).transform(y_train.reshape(-1, 1))
    return xs.astype(np.float32), ys.astype(np.float32)


def regressor() -> nn.Linear:
    torch.manual_seed(0)  # the example's seed and model
    return nn.Linear(10, 1)


def digits_batch(count: int = 512) -> ProbeInputs:
    _, x, y = digits()
    return ProbeInputs.from_arrays(x[:count], y[:count], source="digits")


def deep(
    act: type[nn.Module], depth: int = 8, width: int = 32, std: float | None = None
) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    size = 64
    for index in range(depth):
        out = 10 if index == depth - 1 else width
        linear = nn.Linear(size, out)
        if std is not None:
            nn.init.normal_(linear.weight, std=std)
        layers.append(linear)
        if index < depth - 1:
            layers.append(act())
        size = out
    return nn.Sequential(*layers)


def codes(findings: list[Finding], *wanted: str) -> list[Finding]:
    return [f for f in findings if f.code in (wanted or CODES)]


# NP404 nan-risk: the seed's learning-rate example


def test_sgd_lr_0_3_on_the_diabetes_regression_is_nan_risk() -> None:
    x, y = diabetes()
    result = probe_gradients(
        regressor(),
        x,
        y,
        loss="mse",
        optimizer=OptimizerSettings("SGD", lr=0.3),
        display_path="train.py",
        source_note="train.py:52",
    )
    (finding,) = codes(result.findings, "NP404")
    assert finding.severity is Severity.ERROR
    assert finding.confidence is Confidence.MEDIUM
    assert finding.message.startswith("SGD lr 0.3 (from train.py:52) makes the mse loss grow")
    assert finding.message.endswith("(on 353 probe inputs with given labels)")
    losses = result.losses
    assert losses[-1] >= 1e3 * losses[0]
    assert all(b > a for a, b in zip(losses[2:], losses[3:], strict=False))  # geometric growth
    assert len(losses) == 12  # stopped as soon as it had diverged (after 11 steps)


@pytest.mark.parametrize("rows", [64, 353])
def test_default_steps_catch_lr_0_3_on_a_64_row_batch_too(rows: int) -> None:
    x, y = diabetes()
    for lr, diverges in [(0.3, True), (0.24, False)]:  # the full set's limit is about 0.24
        result = probe_gradients(
            regressor(),
            x[:rows],
            y[:rows],
            loss="mse",
            optimizer=OptimizerSettings("SGD", lr=lr),
            display_path="train.py",
        )
        assert bool(codes(result.findings, "NP404")) is diverges, (lr, result.losses)


def test_sgd_lr_0_1_on_the_diabetes_regression_trains() -> None:
    x, y = diabetes()
    result = probe_gradients(
        regressor(),
        x,
        y,
        loss="mse",
        optimizer=OptimizerSettings("SGD", lr=0.1),
        display_path="train.py",
    )
    assert codes(result.findings) == []
    assert result.losses[-1] < 0.5 * result.losses[0]
    assert len(result.losses) == 41  # every step ran


def test_nan_risk_names_the_defaults_when_no_optimizer_was_found() -> None:
    x, y = diabetes()
    config = Config.default()
    config.rules["NP404"] = {"growth": 1.0001}  # any growth at all
    model = regressor()
    with torch.no_grad():
        model.weight.zero_()
        model.bias.zero_()
    big = (x * 100).astype(np.float32)  # lr 0.01 is far above this problem's stability limit
    result = probe_gradients(model, big, y, loss="mse", display_path="train.py", config=config)
    (finding,) = codes(result.findings, "NP404")
    assert "SGD lr 0.01 (defaults: no optimizer found)" in finding.message


def test_nan_risk_reports_a_non_finite_loss() -> None:
    x, y = diabetes()
    config = Config.default()
    config.rules["NP404"] = {"growth": 1e300}  # growth alone never stops the run
    result = probe_gradients(
        regressor(),
        x * 1e3,
        y,
        loss="mse",
        optimizer=OptimizerSettings("SGD", lr=1.0),
        display_path="train.py",
        source_note="train.py:9",
        steps=40,
        config=config,
    )
    (finding,) = codes(result.findings, "NP404")
    assert "Inf after" in finding.message or "NaN after" in finding.message
    assert finding.confidence is Confidence.HIGH


# NP401 vanishing-gradient, NP402 exploding-gradient


def test_deep_sigmoid_mlp_has_vanishing_gradients() -> None:
    result = probe_gradients(deep(nn.Sigmoid), digits_batch(), display_path="model.pt")
    (finding,) = codes(result.findings, "NP401")
    assert finding.module == "0"
    assert "`14`" in finding.message
    first, last = result.layers[0], result.layers[-1]
    assert first.grad_norm / last.grad_norm < 1e-3 and first.grad_norm < 1e-4
    assert codes(result.findings, "NP402") == []


def test_huge_init_tanh_mlp_has_exploding_gradients() -> None:
    result = probe_gradients(deep(nn.Tanh, width=128, std=1.0), digits_batch(), display_path="m.pt")
    (finding,) = codes(result.findings, "NP402")
    assert finding.severity is Severity.ERROR
    assert finding.module == "0"
    assert result.layers[0].grad_norm / result.layers[-1].grad_norm > 70
    assert codes(result.findings, "NP401") == []


def test_same_tanh_mlp_with_default_init_is_silent() -> None:
    result = probe_gradients(deep(nn.Tanh, width=128), digits_batch(), display_path="m.pt")
    assert codes(result.findings, "NP401", "NP402") == []


def test_gradient_ratio_thresholds_are_options() -> None:
    config = Config.default()
    config.rules["NP402"] = {"ratio": 1e6}
    model = deep(nn.Tanh, width=128, std=1.0)
    result = probe_gradients(model, digits_batch(), display_path="m.pt", config=config)
    assert codes(result.findings, "NP402") == []


def test_nan_gradients_are_exploding() -> None:
    ctx = _context(LayerGradient("0", "linear", 0, 64, 1.0, 1.0, 0.0, 1e-3, nonfinite=3))
    (finding,) = [f for f in _rules_on(ctx) if f.code == "NP402"]
    assert "3 of 64 gradient entries" in finding.message
    assert finding.confidence is Confidence.HIGH


# NP405 dying-relu-gradients


def test_large_negative_bias_gives_dying_relu_gradients() -> None:
    model = trained()
    with torch.no_grad():
        model[0].bias -= 20.0
    result = probe_gradients(
        model, digits_batch(), display_path="model.pt", optimizer=OptimizerSettings("Adam", 1e-2)
    )
    findings = codes(result.findings)
    assert [(f.code, f.module) for f in findings] == [("NP405", "0"), ("NP405", "2")]
    assert "100% of the 4096 weight-gradient entries of `0`" in findings[0].message


# NP403 update-ratio


@pytest.mark.parametrize(("lr", "word"), [(10.0, "more than 0.1"), (1e-9, "less than 1e-05")])
def test_update_ratio_outside_the_healthy_band(lr: float, word: str) -> None:
    result = probe_gradients(
        mlp(),
        digits_batch(),
        optimizer=OptimizerSettings("SGD", lr=lr),
        display_path="model.pt",
        source_note="train.py:31",
        steps=1,
    )
    (finding,) = codes(result.findings, "NP403")
    assert finding.message.startswith(f"SGD lr {lr:g} (from train.py:31) updates 3 of 3")
    assert word in finding.message
    for layer in result.layers:
        ratio = lr * layer.grad_norm / layer.weight_norm
        assert layer.update_ratio == pytest.approx(ratio, rel=1e-4)  # SGD: lr * |grad| / |w|


def test_adam_update_ratio_is_the_effective_first_step() -> None:
    result = probe_gradients(
        mlp(), digits_batch(), optimizer=OptimizerSettings("Adam", lr=1e-3), display_path="m.pt"
    )
    for layer in result.layers:
        # Adam's first step moves every entry with a gradient by about lr.
        expected = 1e-3 * np.sqrt(layer.entries * (1 - layer.zero_fraction)) / layer.weight_norm
        assert layer.update_ratio == pytest.approx(expected, rel=1e-2)


# Healthy, trained: silent on all five


def test_healthy_trained_digits_mlp_is_silent() -> None:
    model = trained()
    assert accuracy(model) > 0.95
    result = probe_gradients(
        model,
        digits_batch(),
        optimizer=OptimizerSettings("Adam", lr=1e-2),
        display_path="model.pt",
        source_note="train.py:40",
    )
    assert codes(result.findings) == []
    assert all(1e-5 < (layer.update_ratio or 0) < 0.1 for layer in result.layers)
    assert not any(np.isnan(result.losses))


def test_synthetic_inputs_and_labels_say_so_and_lower_confidence() -> None:
    result = probe_gradients(deep(nn.Sigmoid), display_path="model.pt")
    (finding,) = codes(result.findings, "NP401")
    assert finding.message.endswith("(on 64 synthetic inputs with synthetic labels)")
    assert finding.confidence is Confidence.LOW
    assert result.context.synthetic_labels and result.context.synthetic_inputs


def test_regression_losses_get_synthetic_targets() -> None:
    result = probe_gradients(regressor(), diabetes()[0], loss="mse", display_path="m.pt")
    assert result.context.synthetic_labels
    assert result.context.measured_on == "353 probe inputs with synthetic labels"


def test_bad_loss_and_shape_mismatch_raise_gradient_error() -> None:
    with pytest.raises(GradientError, match="unknown loss"):
        probe_gradients(mlp(), digits_batch(), loss="hinge", display_path="m.pt")
    with pytest.raises(GradientError, match="labels shaped like the outputs"):
        probe_gradients(mlp(), digits_batch(), loss="mse", display_path="m.pt")
    with pytest.raises(GradientError, match="forward raised"):
        probe_gradients(mlp(), np.zeros((4, 3), np.float32), display_path="m.pt")


# The prober leaves the user's model alone


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("grad_enabled", [True, False])
def test_the_users_model_is_untouched(mode: str, grad_enabled: bool) -> None:
    model = nn.Sequential(
        nn.Linear(64, 32), nn.Dropout(0.5), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)
    )
    model.train(mode == "train")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with torch.set_grad_enabled(grad_enabled):
        probe_gradients(
            model,
            digits_batch(),
            optimizer=OptimizerSettings("SGD", lr=0.5, momentum=0.9),
            display_path="m.pt",
            threads=2,
        )
        assert torch.is_grad_enabled() is grad_enabled
    assert torch.get_num_threads() == 1
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training is (mode == "train") for m in model.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)


# Rules on hand-made contexts (no torch needed)


def _context(*layers: LayerGradient, losses: tuple[float, ...] = (1.0, 0.9)) -> GradientContext:
    return GradientContext(
        path="m.pt",
        layers=layers,
        losses=losses,
        steps=len(losses) - 1,
        loss="cross_entropy",
        optimizer=OptimizerSettings(),
        optimizer_note="defaults: no optimizer found",
        measured_on="8 probe inputs with given labels",
    )


def _rules_on(ctx: GradientContext) -> list[Finding]:
    from nnprobe.core.engine import instantiate, run_rules
    from nnprobe.probe.gradients import gradient_rules

    config = Config.default()
    return run_rules(instantiate(config, set(CODES), gradient_rules()), ctx, "m.pt", config)


def test_already_nan_loss_is_one_finding() -> None:
    layer = LayerGradient("0", "linear", 0, 64, float("nan"), 1.0, 0.0, None, nonfinite=64)
    findings = _rules_on(_context(layer, losses=(float("nan"),)))
    assert [f.code for f in findings] == ["NP404"]
    assert "already NaN" in findings[0].message


def test_small_layers_are_left_out_of_the_update_ratio() -> None:
    layer = LayerGradient("0", "linear", 0, 10, 1.0, 1.0, 0.0, 0.5)
    assert list(UpdateRatio().check(_context(layer))) == []


def test_gradient_rules_register_without_importing_torch() -> None:
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "import nnprobe.inspectors, nnprobe.inspectors.gradients\n"
        "from nnprobe.core.registry import all_rules\n"
        "codes = [r.code for r in all_rules() if r.code.startswith('NP4')]\n"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'numpy') if m in sys.modules]\n"
        "print(json.dumps([heavy, codes]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, registered = json.loads(out.stdout)
    assert heavy == []
    assert registered == list(CODES)


@pytest.mark.parametrize("entry", ZOO, ids=lambda e: e.name)
def test_every_zoo_model_is_left_as_it_was(entry: ZooEntry) -> None:
    model = entry.build().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    if entry.raises:
        with pytest.raises(GradientError, match="forward raised"):
            probe_gradients(model, entry.inputs(), display_path="m.pt", steps=2)
    else:
        result = probe_gradients(model, entry.inputs(), display_path="m.pt", steps=2)
        assert result.layers and all(np.isfinite(result.losses))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_every_loss_runs_with_synthetic_labels(loss: str) -> None:
    head: list[nn.Module] = {"nll": [nn.LogSoftmax(1)], "bce": [nn.Sigmoid()]}.get(loss, [])
    model = nn.Sequential(mlp(), *head)
    x = digits()[1][:64]
    result = probe_gradients(model, x, loss=loss, display_path="m.pt", steps=3)
    assert result.context.synthetic_labels
    assert len(result.losses) == 4 and all(np.isfinite(result.losses))
    assert codes(result.findings) == []
