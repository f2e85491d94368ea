"""NP120 (missing zero_grad) and NP121 (evaluation in training mode): fixes applied and parsed
again, where the fix goes, what the messages say, and the cases a fixture cannot hold."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from rule_helpers import apply_fixes, example_lines, run_rule

from nnprobe.core.finding import Confidence

FIXTURES = Path(__file__).parent / "fixtures" / "static"


def test_np120_fixing_the_fixture_leaves_nothing_to_report() -> None:
    text = (FIXTURES / "np120_missing_zero_grad.py").read_text(encoding="utf-8")
    findings = run_rule(text, "NP120")
    assert findings and all(f.fix is not None for f in findings)
    fixed = apply_fixes(text, findings)
    assert run_rule(fixed, "NP120") == []


def test_np120_fix_goes_before_backward_with_the_step_receiver() -> None:
    source = textwrap.dedent(
        """
        import torch

        def fit(model, loader, loss_fn):
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            for xb, yb in loader:
                with torch.autocast("cpu"):
                    loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
        """
    )
    (finding,) = run_rule(source, "NP120")
    assert finding.fix is not None
    assert "call opt.zero_grad() once per step (before loss.backward())" in finding.message
    fixed = apply_fixes(source, [finding])
    assert "        opt.zero_grad()\n        loss.backward()\n" in fixed


def test_np120_accumulation_is_fixed_after_the_step() -> None:
    source = textwrap.dedent(
        """
        import torch

        def fit(model, loader, loss_fn, optimizer, accum=8):
            for i, (xb, yb) in enumerate(loader):
                (loss_fn(model(xb), yb) / accum).backward()
                if (i + 1) % accum == 0:
                    optimizer.step()  # apply the accumulated gradient
        """
    )
    (finding,) = run_rule(source, "NP120")
    assert "right after optimizer.step()" in finding.message
    fixed = apply_fixes(source, [finding])
    assert (
        "            optimizer.step()  # apply the accumulated gradient\n"
        "            optimizer.zero_grad()\n"
    ) in fixed


def test_np120_names_the_zero_grad_that_runs_too_rarely() -> None:
    source = """
    import torch
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    for epoch in range(3):
        optimizer.zero_grad()
        for x in torch.randn(10, 2):
            model(x).sum().backward()
            optimizer.step()
    """
    (finding,) = run_rule(source, "NP120")
    assert "the only zero_grad() (line 6) runs outside this loop" in finding.message


def test_np120_reports_without_a_fix_when_the_optimizer_is_not_in_scope() -> None:
    source = """
    import torch

    def backward_pass(loss):
        loss.backward()

    def main(model, batches):
        optimizer = torch.optim.Adam(model.parameters())
        for xb in batches:
            backward_pass(model(xb).sum())
            optimizer.step()
    """
    (finding,) = run_rule(source, "NP120")
    assert finding.fix is None


def test_np120_one_line_loop_body_gets_no_broken_fix() -> None:
    source = """
    import torch
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    for x in torch.randn(10, 2): model(x).sum().backward(); optimizer.step()
    """
    (finding,) = run_rule(source, "NP120")
    assert finding.fix is None


def test_np120_silent_on_frameworks_and_unknown_steps() -> None:
    source = """
    import torch

    def fit(trainer, model, loader, optimizer):
        for batch in loader:
            loss = model(batch).sum()
            trainer.backward(loss)
            trainer.step()
            optimizer.step_schedule()
    """
    assert run_rule(source, "NP120") == []


def test_np121_messages_say_what_is_in_training_mode() -> None:
    text = (FIXTURES / "np121_eval_without_eval_mode.py").read_text(encoding="utf-8")
    by_line = {f.range.start.line: f for f in run_rule(text, "NP121")}
    assert by_line[30].confidence is Confidence.MEDIUM
    assert "model.eval() is never called before it" in by_line[30].message
    assert by_line[36].confidence is Confidence.HIGH
    assert "under torch.no_grad() but in training mode" in by_line[36].message
    assert "BatchNorm1d (line 10) and Dropout (line 11)" in by_line[36].message
    assert "model.train() on line 42" in by_line[49].message
    assert by_line[50].message.startswith("model(X_val) runs without model.eval()")


def test_np121_no_grad_alone_is_enough_for_a_model_without_dropout_or_batch_norm() -> None:
    source = """
    import torch
    from torch import nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    def evaluate(loader):
        with torch.no_grad():
            return [model(x) for x in loader]
    """
    assert run_rule(source, "NP121") == []


def test_np121_unknown_models_under_no_grad_stay_silent() -> None:
    source = """
    import torch
    import torchvision

    model = torchvision.models.resnet18()

    def validate(val_loader):
        with torch.inference_mode():
            for images, _ in val_loader:
                model(images)
    """
    assert run_rule(source, "NP121") == []


def test_np121_pytest_functions_are_not_evaluation_passes() -> None:
    source = """
    import pytest
    import torch

    def test_forward_shape(model):
        assert model(torch.zeros(1, 4)).shape == (1, 2)
    """
    assert run_rule(source, "NP121") == []


def test_np121_set_grad_enabled_and_decorators_count_as_no_grad() -> None:
    source = """
    import torch
    from torch import nn
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

    @torch.no_grad()
    def evaluate(loader):
        return [net(x) for x in loader]

    def predict(x):
        torch.set_grad_enabled(False)
        return net(x)
    """
    assert run_rule(source, "NP121") == []


@pytest.mark.parametrize("code", ["NP120", "NP121"])
def test_docs_example_fires_where_it_says(code: str) -> None:
    expected, actual = example_lines(code)
    assert expected and actual == expected
