"""NP113 (no regularization) and NP114 (dropout rate): options, messages, and the whole-script
negatives of NP113 that one fixture file cannot hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from rule_helpers import example_lines, run_rule

from nnprobe.core.config import Config
from nnprobe.core.finding import Severity
from nnprobe.core.registry import get_rule

SCRIPTS = Path(__file__).parent / "fixtures" / "static" / "scripts"

LONG_RUN = """
import torch
from torch import nn
from sklearn.model_selection import train_test_split

X_train, X_val, y_train, y_val = train_test_split(torch.randn(100, 4), torch.randn(100, 1))
model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(){layer}, nn.Linear(16, 1))
optimizer = torch.optim.{optimizer}
for epoch in range(50):
    optimizer.zero_grad()
    nn.functional.mse_loss(model(X_train), y_train).backward()
    optimizer.step()
{extra}
"""


def long_run(
    layer: str = "", optimizer: str = "SGD(model.parameters(), lr=0.01)", extra: str = ""
) -> str:
    return LONG_RUN.format(layer=layer, optimizer=optimizer, extra=extra)


def test_np113_is_off_by_default() -> None:
    rule = get_rule("NP113")
    assert rule is not None and not rule.enabled_by_default
    assert "NP113" not in Config.default().select


def test_np113_fires_on_the_bare_long_run() -> None:
    (finding,) = run_rule(long_run(), "NP113")
    assert finding.severity is Severity.INFO
    assert finding.range.start.line == 9
    assert "50 epochs" in finding.message and "no weight_decay (SGD)" in finding.message


@pytest.mark.parametrize(
    "script",
    [
        long_run(optimizer="SGD(model.parameters(), lr=0.01, weight_decay=1e-4)"),
        long_run(optimizer="AdamW(model.parameters(), lr=1e-3)"),  # default weight_decay=0.01
        long_run(optimizer="Adam([{'params': model.parameters(), 'weight_decay': 1e-4}])"),
        long_run(layer=", nn.Dropout(0.2)"),
        long_run(extra="    if epoch > 10 and y_val.std() < 1e-3:\n        break"),
        long_run(extra="best_val = float('inf')"),
        long_run(extra="patience = 5"),
        long_run(extra="l2_penalty = sum(p.pow(2).sum() for p in model.parameters())"),
    ],
)
def test_np113_any_regularization_keeps_it_silent(script: str) -> None:
    assert run_rule(script, "NP113") == []


def test_np113_needs_a_validation_split_and_enough_epochs() -> None:
    no_split = (
        long_run()
        .replace("from sklearn.model_selection import train_test_split\n", "")
        .replace(
            "X_train, X_val, y_train, y_val = train_test_split(torch.randn(100, 4), "
            "torch.randn(100, 1))",
            "X_train, y_train = torch.randn(100, 4), torch.randn(100, 1)",
        )
    )
    assert "split" not in no_split
    assert run_rule(no_split, "NP113") == []
    assert run_rule(long_run(), "NP113", min_epochs=60) == []
    assert len(run_rule(long_run(), "NP113", min_epochs=50)) == 1


def test_np113_on_the_realistic_script() -> None:
    text = (SCRIPTS / "resume_long_training.py").read_text(encoding="utf-8")
    (finding,) = run_rule(text, "NP113")
    assert finding.range.start.line == 38
    assert "up to 60 epochs" in finding.message


def test_np114_thresholds_are_options() -> None:
    source = """
    from torch import nn
    a = nn.Dropout(0.4)
    b = nn.Dropout(0.85)
    """
    defaults = run_rule(source, "NP114")
    assert [(f.range.start.line, f.severity) for f in defaults] == [(4, Severity.WARNING)]
    findings = run_rule(source, "NP114", warn_above=0.3, error_at=0.8)
    assert [(f.range.start.line, f.severity) for f in findings] == [
        (3, Severity.WARNING),
        (4, Severity.ERROR),
    ]
    assert "more than the usual 0.3" in findings[0].message


def test_np114_keep_prob_message_suggests_the_complement() -> None:
    source = """
    import torch.nn.functional as F
    def forward(x):
        return F.dropout(x, p=0.8 + 0.1)
    """
    (finding,) = run_rule(source, "NP114")
    assert finding.severity is Severity.ERROR
    assert "F.dropout(p=0.9) drops 90% of the units" in finding.message
    assert "not keep_prob" in finding.message and "use p=0.1" in finding.message
    assert (finding.range.start.column, finding.range.end.column) == (25, 36)


@pytest.mark.parametrize("code", ["NP113", "NP114"])
def test_docs_example_fires_where_it_says(code: str) -> None:
    expected, actual = example_lines(code)
    assert expected and actual == expected
