"""NP118 (input not normalized) and NP119 (exhaustive grid search): the whole-script negatives of
NP118, the train/test pipeline mismatch, options and the numbers in messages."""

from __future__ import annotations

import pytest
from rule_helpers import example_lines, run_rule

from nnprobe.core.finding import Confidence

DIGITS = """
import torch
from torch import nn
from sklearn.datasets import load_digits

X, y = load_digits(return_X_y=True)
{scaling}
model = nn.Sequential({first}nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(5):
    optimizer.zero_grad()
    logits = model(torch.tensor(X, dtype=torch.float32))
    nn.functional.cross_entropy(logits, torch.tensor(y)).backward()
    optimizer.step()
"""


def digits(scaling: str = "", first: str = "") -> str:
    return DIGITS.format(scaling=scaling, first=first)


def test_np118_fires_on_raw_digits() -> None:
    (finding,) = run_rule(digits(), "NP118")
    assert finding.range.start.line == 6
    assert "load_digits() pixel values run from 0 to 16" in finding.message
    assert finding.confidence is Confidence.MEDIUM


@pytest.mark.parametrize(
    ("scaling", "first"),
    [
        ("X = X / 16.0", ""),
        ("X /= 16", ""),
        ("X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)", ""),
        (
            "from sklearn import preprocessing as pp\nX = pp.StandardScaler().fit_transform(X)",
            "",
        ),
        ("from sklearn.preprocessing import minmax_scale\nX = minmax_scale(X)", ""),
        ("def standardize(a):\n    return a\nX = standardize(X)", ""),
        ("X = torch.nn.functional.normalize(torch.tensor(X), dim=1).numpy()", ""),
        ("", "nn.BatchNorm1d(64), "),
    ],
)
def test_np118_any_scaling_keeps_it_silent(scaling: str, first: str) -> None:
    assert run_rule(digits(scaling, first), "NP118") == []


def test_np118_needs_a_model() -> None:
    source = """
    import torch
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    """
    assert run_rule(source, "NP118") == []


def test_np118_csv_is_low_confidence() -> None:
    source = digits().replace(
        "X, y = load_digits(return_X_y=True)",
        "import pandas as pd\ndf = pd.read_csv('data.csv')\nX, y = df.values[:, :-1], df['y']",
    )
    (finding,) = run_rule(source, "NP118")
    assert finding.confidence is Confidence.LOW
    assert "pd.read_csv()" in finding.message


def test_np118_names_the_other_pipeline_when_only_one_normalizes() -> None:
    source = """
    import torch
    from torchvision import datasets, transforms
    train_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    test_tf = transforms.Compose([transforms.ToTensor()])
    train_set = datasets.MNIST("data", train=True, transform=train_tf)
    test_set = datasets.MNIST("data", train=False, transform=test_tf)
    model = torch.nn.Linear(784, 10)
    print(model(train_set[0][0].flatten()))
    """
    (finding,) = run_rule(source, "NP118")
    assert finding.range.start.line == 5
    assert "the pipeline on line 4 does normalize" in finding.message
    assert "transforms.Normalize((0.1307,), (0.3081,))" in finding.message


NESTED = """
import torch
for lr in [1e-3, 1e-2]:
    for batch_size in [32, 64, 128]:
        for dropout in [0.0, 0.5]:
            print(lr, batch_size, dropout)
"""


def test_np119_message_counts_the_runs() -> None:
    (finding,) = run_rule(NESTED, "NP119")
    assert "3 hyperparameters (lr, batch_size, dropout: 2 x 3 x 2 = 12 runs)" in finding.message
    assert "random search over the same 12 runs tries 12 values of each" in finding.message
    assert (finding.range.start.line, finding.range.end.line) == (3, 3)


def test_np119_min_parameters_option() -> None:
    assert run_rule(NESTED, "NP119", min_parameters=4) == []
    two = """
    import torch
    for lr in [1e-3, 1e-2]:
        for wd in [0.0, 1e-4]:
            print(lr, wd)
    """
    assert run_rule(two, "NP119") == []
    assert len(run_rule(two, "NP119", min_parameters=2)) == 1


def test_np119_ray_tune_grid() -> None:
    source = """
    import torch
    from ray import tune
    config = {
        "lr": tune.grid_search([1e-3, 1e-2]),
        "hidden": tune.grid_search([64, 128]),
        "dropout": tune.grid_search([0.1, 0.3]),
        "epochs": 10,
    }
    """
    (finding,) = run_rule(source, "NP119")
    assert "tune.grid_search searches a grid over 3 hyperparameters" in finding.message


@pytest.mark.parametrize("code", ["NP118", "NP119"])
def test_docs_example_fires_where_it_says(code: str) -> None:
    expected, actual = example_lines(code)
    assert expected and actual == expected
