"""The optimizer family (NP101-NP103, NP115, NP116): what the fixtures cannot show.

Thresholds moved by options, the numbers in messages, and the whole-script negatives of NP103
(a fixture file can hold only one script, and NP103 looks at the whole script).
"""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from nnprobe.core.config import Config, parse_config
from nnprobe.core.docs import render_rule_page
from nnprobe.core.finding import Finding, Severity
from nnprobe.core.registry import get_rule
from nnprobe.inspectors.script.handler import check_text

CODES = ("NP101", "NP102", "NP103", "NP115", "NP116")
HEAD = "import torch\nimport torch.nn as nn\nfrom torch import optim\n"


def run(source: str, code: str, options: dict[str, Any] | None = None) -> list[Finding]:
    table: dict[str, Any] = {"select": [code]}
    if options:
        table["rules"] = {code: options}
    config = parse_config(table, prefix="")
    return check_text(HEAD + textwrap.dedent(source), "train.py", config)


def lines(findings: list[Finding]) -> list[int]:
    """Finding lines counted in the snippet (HEAD is three lines)."""
    return [f.range.start.line - 3 for f in findings]


@pytest.mark.parametrize("code", CODES)
def test_docs_have_every_heading_and_no_fix_is_claimed(code: str) -> None:
    rule = get_rule(code)
    assert rule is not None
    assert rule.missing_headings() == []
    assert rule.fixable is False
    page = render_rule_page(rule)
    for option in rule.options:
        assert f"`{option}`" in page
    assert "\n" not in rule.summary() and len(rule.summary()) < 100


@pytest.mark.parametrize("code", CODES)
def test_docs_example_fires(code: str) -> None:
    rule = get_rule(code)
    assert rule is not None
    example = rule.doc_sections()["Example"]
    snippet = example.split("```python\n", 1)[1].split("```", 1)[0]
    prelude = "model = nn.Linear(2, 2)\nloader = []\nloss_fn = nn.MSELoss()\n"
    assert run(prelude + snippet, code), f"{code}'s Example does not trigger it"


# ---------------------------------------------------------------- NP101


def test_np101_message_names_optimizer_value_source_and_limit() -> None:
    (finding,) = run("LR = 0.3\nopt = optim.SGD([], lr=LR)\n", "NP101")
    assert finding.severity is Severity.ERROR
    assert "SGD learning rate 0.3 (LR) is >= 0.3" in finding.message
    assert "NaN" in finding.message and "0.1 or lower" in finding.message
    assert finding.fix is None
    assert (finding.range.start.column, finding.range.end.column) == (21, 26)  # `lr=LR`


def test_np101_options_move_the_thresholds() -> None:
    source = "optim.SGD([], lr=0.08)\noptim.Adam([], lr=0.005)\noptim.Adadelta([], lr=2.0)\n"
    assert run(source, "NP101") == []
    findings = run(
        source,
        "NP101",
        {"sgd-max": 0.05, "sgd-error": 0.5, "adaptive-max": 0.001, "adadelta-lbfgs-max": 1.5},
    )
    assert lines(findings) == [1, 2, 3]
    assert all(f.severity is Severity.WARNING for f in findings)
    assert "above 0.05" in findings[0].message
    (error,) = run("optim.SGD([], lr=0.08)\n", "NP101", {"sgd-error": 0.08})
    assert error.severity is Severity.ERROR


def test_np101_annotated_transformer_lambda_lr_is_silent() -> None:
    source = """
    model = nn.Linear(512, 512)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer=optimizer, lr_lambda=lambda step: 512 ** -0.5 * min(max(step, 1) ** -0.5, 1.0)
    )
    """
    assert run(source, "NP101") == []


def test_np101_optimizer_from_a_factory_gets_the_scheduler_range() -> None:
    source = """
    def make_optimizer(model):
        return optim.Adam(model.parameters(), lr=1e-3)

    def other(model):
        return optim.SGD(model.parameters(), lr=0.01)

    model = nn.Linear(2, 2)
    opt = make_optimizer(model)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    """
    (finding,) = run(source, "NP101")
    assert "Adam peak learning rate (OneCycleLR max_lr) 0.05" in finding.message


def test_np101_scheduler_of_an_unknown_optimizer_is_silent() -> None:
    source = """
    model = nn.Linear(2, 2)
    a = optim.SGD(model.parameters(), lr=0.01)
    b = optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(get_optimizer(), max_lr=0.05, total_steps=10)
    """
    assert run(source, "NP101") == []


# ---------------------------------------------------------------- NP102


def test_np102_zero_placeholder_with_hand_set_lr_is_silent() -> None:
    source = """
    model = nn.Linear(8, 8)
    optimizer = optim.Adam(model.parameters(), lr=0, betas=(0.9, 0.98), eps=1e-9)
    for step in range(1, 1000):
        rate = 512 ** -0.5 * min(step ** -0.5, step * 4000 ** -1.5)
        for p in optimizer.param_groups:
            p["lr"] = rate
        optimizer.step()
    """
    assert run(source, "NP102") == []


def test_np102_messages_for_zero_tiny_and_negative() -> None:
    source = "optim.SGD([], lr=0)\noptim.Adam([], lr=5e-7)\noptim.SGD([], lr=-1e-3)\n"
    zero, tiny, negative = run(source, "NP102")
    assert "is 0: the optimizer never changes the weights" in zero.message
    assert "5e-07 is below 1e-06" in tiny.message and "for Adam" in tiny.message
    assert negative.severity is Severity.ERROR
    assert "Invalid learning rate" in negative.message


def test_np102_min_lr_option() -> None:
    assert run("optim.Adam([], lr=5e-6)\n", "NP102") == []
    assert lines(run("optim.Adam([], lr=5e-6)\n", "NP102", {"min-lr": 1e-5})) == [1]


# ---------------------------------------------------------------- NP103

LOOP = """
for epoch in range({epochs}):
    for x, y in loader:
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
        {inner}
    {outer}
"""


def np103(prelude: str = "", epochs: str = "50", inner: str = "", outer: str = "") -> list[int]:
    body = LOOP.format(epochs=epochs, inner=inner, outer=outer)
    source = (
        "model = nn.Linear(4, 2)\nloss_fn = nn.CrossEntropyLoss()\nloader = []\n"
        + textwrap.dedent(prelude)
        + body
    )
    return lines(run(source, "NP103"))


SGD = "optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)\n"


def test_np103_fires_on_the_optimizer() -> None:
    assert np103(SGD) == [4]
    assert np103(SGD, epochs="args_epochs()") == [4]


@pytest.mark.parametrize(
    ("prelude", "inner", "outer"),
    [
        ("sched = optim.lr_scheduler.StepLR(optimizer, 30, gamma=0.1)\n", "", "sched.step()"),
        ("sched = optim.lr_scheduler.ReduceLROnPlateau(optimizer)\n", "", "sched.step(1.0)"),
        (
            "from torch.optim.lr_scheduler import CosineAnnealingLR as C\ns = C(optimizer, 10)\n",
            "",
            "",
        ),
        (
            "from transformers import get_linear_schedule_with_warmup\n"
            "s = get_linear_schedule_with_warmup(optimizer, 10, 100)\n",
            "s.step()",
            "",
        ),
        ("from torch.optim.swa_utils import SWALR\ns = SWALR(optimizer, swa_lr=0.05)\n", "", ""),
        ("class WarmupScheduler:\n    pass\n", "", ""),
        ("", "", "optimizer.param_groups[0]['lr'] *= 0.5"),
        ("", "", "for g in optimizer.param_groups:\n        g['lr'] = 0.01"),
        ("", "", "adjust_learning_rate(optimizer, epoch)"),
        ("lr = 0.05\n", "", "lr /= 4.0"),
        ("def set_lr(opt, value):\n    pass\n", "", ""),
    ],
)
def test_np103_silent_when_the_lr_changes(prelude: str, inner: str, outer: str) -> None:
    assert np103(SGD + prelude, inner=inner, outer=outer) == []


def test_np103_silent_for_short_runs_and_the_min_epochs_option() -> None:
    assert np103(SGD, epochs="5") == []
    assert np103(SGD, epochs="1, 10") == []  # 9 epochs
    source = "model = nn.Linear(4, 2)\n" + SGD + LOOP.format(epochs="5", inner="", outer="")
    assert lines(run(source, "NP103", {"min-epochs": 5})) == [2]


def test_np103_counts_wrapped_ranges_and_overridden_defaults() -> None:
    assert np103("from tqdm import tqdm\n" + SGD, epochs="5") == []
    source = (
        "from tqdm import tqdm\nmodel = nn.Linear(4, 2)\n"
        + SGD
        + LOOP.format(epochs="3", inner="", outer="").replace(
            "range(3)", "tqdm(range(3), desc='epochs')"
        )
    )
    assert run(source, "NP103") == []
    fit = """
    model = nn.Linear(4, 2)
    optimizer = optim.Adam(model.parameters())

    def fit(epochs=5):
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                model(x).sum().backward()
                optimizer.step()

    fit(epochs=50)
    """
    (finding,) = run(fit, "NP103")
    assert "50 epochs" in finding.message  # the callers' value, not the default of 5
    assert run(fit.replace("fit(epochs=50)", "fit()"), "NP103") == []


def test_np103_silent_without_one_constructed_optimizer() -> None:
    assert np103("optimizer = make_optimizer(model)\n") == []
    gan = SGD + "d_opt = optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))\n"
    assert np103(gan) == []


@pytest.mark.parametrize("kind", ["Adadelta", "Adagrad", "LBFGS", "Rprop"])
def test_np103_silent_for_self_decaying_optimizers(kind: str) -> None:
    assert np103(f"optimizer = optim.{kind}(model.parameters())\n") == []


def test_np103_silent_for_one_pass_over_the_data() -> None:
    source = """
    model = nn.Linear(4, 2)
    optimizer = optim.Adam(model.parameters())
    for x, y in loader:
        optimizer.zero_grad()
        model(x).sum().backward()
        optimizer.step()
    for i in range(0, 1000, 32):
        optimizer.zero_grad()
        model(X[i : i + 32]).sum().backward()
        optimizer.step()
    for batch_idx in range(100):
        optimizer.zero_grad()
        model(X).sum().backward()
        optimizer.step()
    """
    assert run(source, "NP103") == []


def test_np103_silent_when_a_framework_runs_the_loop() -> None:
    source = """
    import lightning as L
    model = nn.Linear(4, 2)
    optimizer = optim.Adam(model.parameters())
    for epoch in range(100):
        loss = model(x).sum()
        loss.backward()
        optimizer.step()
    trainer = L.Trainer(max_epochs=100)
    trainer.fit(model)
    """
    assert run(source, "NP103") == []


def test_np103_silent_when_the_optimizer_is_rebuilt_each_epoch() -> None:
    source = """
    model = nn.Linear(4, 2)
    for epoch in range(100):
        optimizer = optim.SGD(model.parameters(), lr=0.1 * 0.95 ** epoch)
        for x, y in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
    """
    assert run(source, "NP103") == []


def test_np103_message_says_how_long_and_where() -> None:
    source = "model = nn.Linear(4, 2)\n" + SGD + LOOP.format(epochs="30", inner="", outer="")
    (finding,) = run(source, "NP103")
    assert finding.severity is Severity.INFO
    assert "SGD trains for 30 epochs (loop at line 7)" in finding.message
    assert "StepLR" in finding.message
    assert (finding.range.start.column, finding.range.end.column) == (13, 22)  # `optim.SGD`


# ---------------------------------------------------------------- NP115


def test_np115_options_and_message() -> None:
    source = "optim.SGD([], lr=0.1, weight_decay=0.05)\noptim.AdamW([], weight_decay=0.8)\n"
    assert run(source, "NP115") == []
    findings = run(source, "NP115", {"max": 0.01, "decoupled-max": 0.5, "error": 0.7})
    assert [f.severity for f in findings] == [Severity.WARNING, Severity.ERROR]
    assert "SGD weight_decay 0.05 is above 0.01" in findings[0].message
    assert "AdamW weight_decay 0.8 is >= 0.7" in findings[1].message


def test_np115_optimizers_without_weight_decay_are_ignored() -> None:
    assert run("optim.SparseAdam([], 1e-3, (0.9, 0.999), 1e-8, 5.0)\n", "NP115") == []


# ---------------------------------------------------------------- NP116

DEEP = """
class Deep(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential({layers})

    def forward(self, x):
        return self.body(x)


model = Deep()
"""


def test_np116_min_layers_option() -> None:
    layers = ", ".join(["nn.Linear(8, 8)"] * 4)
    source = DEEP.format(layers=layers) + "optimizer = optim.SGD(model.parameters(), lr=0.01)\n"
    assert run(source, "NP116") == []
    (finding,) = run(source, "NP116", {"min-layers": 4})
    assert "plain SGD (momentum 0) trains Deep with 4 weight layers" in finding.message
    assert "momentum=0.9" in finding.message


def test_np116_silent_when_the_model_is_not_known() -> None:
    source = """
    from torchvision.models import resnet50
    model = resnet50()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    """
    assert run(source, "NP116") == []


# ---------------------------------------------------------------- all five, on idiomatic code


def test_idiomatic_settings_are_silent_for_the_whole_family() -> None:
    source = """
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", default=0.1, type=float)
    parser.add_argument("--momentum", default=0.9, type=float)
    parser.add_argument("--wd", default=1e-4, type=float, dest="weight_decay")
    parser.add_argument("--epochs", default=90, type=int)
    args = parser.parse_args()
    model = nn.Sequential(*[nn.Linear(8, 8), nn.ReLU()] * 5)
    optimizer = torch.optim.SGD(
        model.parameters(), args.lr, momentum=args.momentum, weight_decay=args.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(args.epochs):
        for x, y in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
        scheduler.step()
    """
    config = Config.default().with_overrides(select=list(CODES))
    assert check_text(HEAD + textwrap.dedent(source), "train.py", config) == []
