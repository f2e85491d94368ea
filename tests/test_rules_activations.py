"""NP301-NP308 on real models trained here on digits and on models with planted faults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from digits_models import accuracy, dead_fraction, digits, trained
from torch import nn

from nnprobe.core.config import Config
from nnprobe.core.finding import Confidence, Finding, Severity
from nnprobe.probe import ProbeInputs, ProbeOptions, probe_module


@pytest.fixture(scope="module")
def options(tmp_path_factory: pytest.TempPathFactory) -> ProbeOptions:
    return ProbeOptions(cache_dir=tmp_path_factory.mktemp("cache"))


def run(
    model: nn.Module,
    options: ProbeOptions,
    inputs: object = None,
    code: str | None = None,
    **settings: object,
) -> list[Finding]:
    config = Config.default()
    if code and settings:
        config.rules[code] = dict(settings)
    result = probe_module(model, inputs, display_path="model.pt", config=config, options=options)
    assert result.backend == "onnxruntime", result.fallback_reason
    return [f for f in result.findings if code is None or f.code == code]


def standard_digits() -> ProbeInputs:
    _, x, y = digits()
    return ProbeInputs.from_arrays(x, y, source="digits")


# NP301 dead-relu


def test_healthy_trained_net_has_no_dead_relus(options: ProbeOptions) -> None:
    model = trained()
    assert accuracy(model) > 0.95
    assert dead_fraction(model, 3) < 0.4
    assert run(model, options, standard_digits(), "NP301") == []


def test_too_high_learning_rate_kills_relus(options: ProbeOptions) -> None:
    model = trained(lr=0.1)  # Adam at 10x its usual rate
    truth = dead_fraction(model, 3)
    assert truth >= 0.7  # really dead, by plain torch
    (finding,) = run(model, options, standard_digits(), "NP301")
    assert finding.module == "3"
    assert finding.severity is Severity.ERROR
    assert finding.confidence is Confidence.MEDIUM
    assert f"{round(truth * 64)} of 64 units" in finding.message
    assert "after `2`" in finding.message
    assert finding.message.endswith("(on 1797 inputs from digits)")


def test_large_negative_bias_kills_relus(options: ProbeOptions) -> None:
    model = trained()
    with torch.no_grad():
        model[0].bias -= 20.0
    assert dead_fraction(model, 1) == 1.0
    findings = run(model, options, standard_digits(), "NP301")
    assert [f.module for f in findings if f.severity is Severity.ERROR][0] == "1"


def test_dead_relu_threshold_is_an_option(options: ProbeOptions) -> None:
    model = trained(lr=0.1)
    assert run(model, options, standard_digits(), "NP301", **{"warn-at": 0.99}) == []


def test_synthetic_inputs_lower_confidence_and_say_so(options: ProbeOptions) -> None:
    model = trained(lr=0.1)
    (finding,) = run(model, options, None, "NP301")
    assert finding.confidence is Confidence.LOW
    assert finding.message.endswith("(on 64 synthetic inputs)")


# NP302 saturated-activation


def sigmoid_net(scale: float) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.Sigmoid(), nn.Linear(64, 64), nn.Tanh())
    model.append(nn.Linear(64, 4))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.mul_(scale)
    return model


def test_huge_weights_saturate_sigmoid(options: ProbeOptions) -> None:
    findings = run(sigmoid_net(30.0), options, None, "NP302")
    assert [f.module for f in findings] == ["1", "3"]
    assert "sigmoid `1`" in findings[0].message


def test_default_init_does_not_saturate(options: ProbeOptions) -> None:
    assert run(sigmoid_net(1.0), options, None, "NP302") == []


def test_output_sigmoid_is_exempt_unless_asked(options: ProbeOptions) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 8), nn.Sigmoid())
    with torch.no_grad():
        model[0].weight.mul_(50.0)
    assert run(model, options, None, "NP302") == []
    assert len(run(model, options, None, "NP302", **{"include-output": True})) == 1


# NP303 vanishing / NP304 exploding


def deep_net(scale: float, depth: int = 6) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(depth):
        linear = nn.Linear(64, 64)
        nn.init.kaiming_normal_(linear.weight, nonlinearity="relu")
        nn.init.zeros_(linear.bias)
        with torch.no_grad():
            linear.weight.mul_(scale)
        layers += [linear, nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(64, 4))


def test_small_weights_vanish(options: ProbeOptions) -> None:
    (finding,) = run(deep_net(0.1), options, None, "NP303")
    assert "shrinks from" in finding.message and finding.module is not None
    assert run(deep_net(0.1), options, None, "NP304") == []


def test_large_weights_explode(options: ProbeOptions) -> None:
    (finding,) = run(deep_net(10.0), options, None, "NP304")
    assert "grows from" in finding.message
    assert run(deep_net(10.0), options, None, "NP303") == []


def test_he_init_keeps_the_scale(options: ProbeOptions) -> None:
    assert run(deep_net(1.0), options, None, "NP303") == []
    assert run(deep_net(1.0), options, None, "NP304") == []


# NP305 non-finite


def test_nan_weight_located_at_its_layer(options: ProbeOptions) -> None:
    model = deep_net(1.0, depth=3)
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    (finding,) = run(model, options, None, "NP305")
    assert finding.module == "2"
    assert finding.severity is Severity.ERROR
    assert "first appears at linear layer `2`" in finding.message


def test_fp16_overflow_warns(options: ProbeOptions) -> None:
    model = deep_net(1.0, depth=2)
    with torch.no_grad():
        model[2].weight.mul_(1e6)
    (finding,) = run(model, options, None, "NP305")
    assert finding.severity is Severity.WARNING and "float16" in finding.message


def test_nan_in_inputs_reported_as_such(options: ProbeOptions) -> None:
    x = np.random.default_rng(0).standard_normal((8, 64)).astype(np.float32)
    x[0, 0] = np.nan
    (finding,) = run(deep_net(1.0, depth=2), options, x, "NP305")
    assert "probe inputs themselves" in finding.message


# NP306 activation-resembles-input


def conv_net(identity: bool) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten())
    model.append(nn.Linear(8 * 8 * 8, 10))
    if identity:
        with torch.no_grad():
            model[0].weight.zero_()
            model[0].weight[:, 0, 1, 1] = 1.0
            model[0].bias.zero_()
    return model


def test_copied_input_in_early_feature_maps(options: ProbeOptions) -> None:
    raw, _, _ = digits()
    images = ProbeInputs.from_arrays(raw.reshape(-1, 1, 8, 8) / 16.0, source="digits")
    (finding,) = run(conv_net(identity=True), options, images, "NP306")
    assert finding.module == "0" and finding.severity is Severity.INFO
    assert run(conv_net(identity=False), options, images, "NP306") == []


def test_resemblance_needs_image_like_inputs(options: ProbeOptions) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), nn.ReLU())
    assert run(model, options, None, "NP306") == []


# NP307 dense-activations


def test_always_on_relu_is_dense(options: ProbeOptions) -> None:
    model = deep_net(1.0, depth=2)
    with torch.no_grad():
        model[0].bias.fill_(50.0)
    findings = run(model, options, None, "NP307")
    assert [f.module for f in findings] == ["1"]
    assert run(deep_net(1.0, depth=2), options, None, "NP307") == []


# NP308 unnormalized-input


def test_raw_digits_are_not_normalised(options: ProbeOptions) -> None:
    raw, standard, y = digits()
    model = trained()
    (finding,) = run(model, options, ProbeInputs.from_arrays(raw, y, source="digits"), "NP308")
    assert "mean 4.88" in finding.message
    assert run(model, options, ProbeInputs.from_arrays(standard, y), "NP308") == []
    assert run(model, options, None, "NP308") == []  # synthetic inputs are not the user's data


def test_findings_land_on_the_display_path(options: ProbeOptions, tmp_path: Path) -> None:
    findings = run(trained(lr=0.1), options, standard_digits())
    assert findings and {f.path for f in findings} == {"model.pt"}
    assert all(f.range.start.line == 1 for f in findings)
