"""NP104-NP107 beyond the fixtures: the fixes' edits applied and re-parsed, their applicability,
message content, and the shapes of code the fixtures cannot show one line at a time."""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest
from test_static_fixtures import expectations

from nnprobe.core.config import Config
from nnprobe.core.finding import Edit, Finding, Severity
from nnprobe.core.registry import get_rule
from nnprobe.inspectors.script.handler import check_text

FIXTURES = Path(__file__).parent / "fixtures" / "static"
CODES = ["NP104", "NP105", "NP106", "NP107"]
HEADER = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n"


def findings(text: str, codes: list[str] | None = None) -> list[Finding]:
    config = Config.default(root=FIXTURES).with_overrides(select=codes or CODES)
    return check_text(text, "script.py", config, "script.py")


def check(body: str, codes: list[str] | None = None) -> tuple[str, list[Finding]]:
    text = HEADER + textwrap.dedent(body)
    return text, findings(text, codes)


def apply(text: str, edits: tuple[Edit, ...]) -> str:
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1

    result = text
    ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.column), reverse=True)
    for edit in ordered:
        start = offset(edit.range.start.line, edit.range.start.column)
        end = offset(edit.range.end.line, edit.range.end.column)
        result = result[:start] + edit.new_text + result[end:]
    return result


def only(found: list[Finding], code: str) -> Finding:
    matching = [f for f in found if f.code == code]
    assert len(matching) == 1, [(f.code, f.range.start.line, f.message) for f in found]
    return matching[0]


LOSS_FILES = sorted(FIXTURES.glob("np10[4-7]_*.py")) + sorted(
    p
    for p in (FIXTURES / "scripts").glob("*.py")
    if re.search(r"NP10[4-7]\]", p.read_text(encoding="utf-8"))
)


@pytest.mark.parametrize("path", LOSS_FILES, ids=lambda p: p.name)
def test_every_fix_yields_valid_python_and_silences_its_finding(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    before = findings(text)
    fixes = [f for f in before if f.fix is not None]
    assert fixes or path.name.startswith("breast_cancer_single_unit"), path.name
    for finding in fixes:
        assert finding.fix is not None
        fixed = apply(text, finding.fix.edits)
        assert fixed != text
        ast.parse(fixed)
        count = sum(1 for f in before if f.code == finding.code)
        assert sum(1 for f in findings(fixed) if f.code == finding.code) < count, finding.message


def test_call_site_softmax_is_removed_safely() -> None:
    text, found = check(
        """
        criterion = nn.CrossEntropyLoss()

        def step(logits, y):
            return criterion(F.softmax(logits, dim=1), y)
        """
    )
    finding = only(found, "NP104")
    assert finding.severity is Severity.ERROR
    assert "line 8" in finding.message and "raw logits" in finding.message
    assert finding.fix is not None and finding.fix.applicability == "safe"
    assert "return criterion(logits, y)" in apply(text, finding.fix.edits)
    start, end = finding.range.start, finding.range.end
    assert (start.line, start.column, end.line, end.column) == (8, 22, 8, 46)


def test_local_variable_read_elsewhere_makes_the_fix_unsafe() -> None:
    text, found = check(
        """
        def step(logits, y):
            probs = torch.softmax(logits, 1)
            loss = F.cross_entropy(probs, y)
            confidence = probs.max(dim=1).values
            return loss, confidence
        """
    )
    finding = only(found, "NP104")
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    assert "probs = logits\n" in apply(text, finding.fix.edits)


def test_softmax_in_forward_is_replaced_by_its_input_and_marked_unsafe() -> None:
    text, found = check(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)

            def forward(self, x):
                return F.softmax(self.fc(x), dim=1)

        model = Net()
        loss = nn.CrossEntropyLoss()(model(torch.randn(2, 8)), torch.tensor([0, 1]))
        """
    )
    finding = only(found, "NP104")
    assert "in the model" in finding.message and "line 14" in finding.message
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    assert "return self.fc(x)\n" in apply(text, finding.fix.edits)


def test_sequential_entry_on_its_own_line_is_deleted_with_the_line() -> None:
    text, found = check(
        """
        model = nn.Sequential(
            nn.Linear(8, 3),
            nn.Softmax(dim=1),  # probabilities
        )
        loss = F.cross_entropy(model(torch.randn(2, 8)), torch.tensor([0, 1]))
        """
    )
    finding = only(found, "NP104")
    assert finding.fix is not None
    fixed = apply(text, finding.fix.edits)
    assert "model = nn.Sequential(\n    nn.Linear(8, 3),\n)\n" in fixed
    ast.parse(fixed)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            "nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))",
            "nn.Sequential(nn.Linear(8, 3))",
        ),
        ("nn.Sequential(nn.Softmax(dim=1))", "nn.Sequential()"),
        (
            'nn.Sequential(OrderedDict([("fc", nn.Linear(8, 3)), ("sm", nn.Softmax(1))]))',
            'nn.Sequential(OrderedDict([("fc", nn.Linear(8, 3))]))',
        ),
        (
            'nn.Sequential(OrderedDict([("schätzer", nn.Linear(8, 3)), ("σ", nn.Softmax(1))]))',
            'nn.Sequential(OrderedDict([("schätzer", nn.Linear(8, 3))]))',
        ),
    ],
)
def test_inline_sequential_entry_is_deleted_with_its_comma(model: str, expected: str) -> None:
    text, found = check(
        f"""
        from collections import OrderedDict
        model = {model}
        loss = F.cross_entropy(model(torch.randn(2, 8)), torch.tensor([0, 1]))
        """,
        ["NP104"],
    )
    finding = only(found, "NP104")
    assert finding.fix is not None
    assert f"model = {expected}\n" in apply(text, finding.fix.edits)


def test_module_attribute_softmax_is_removed_where_forward_applies_it() -> None:
    text, found = check(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)
                self.softmax = nn.Softmax(dim=1)

            def forward(self, x):
                return self.softmax(self.fc(x))

        loss = nn.CrossEntropyLoss()(Net()(torch.randn(2, 8)), torch.tensor([0, 1]))
        """
    )
    finding = only(found, "NP104")
    assert finding.range.start.line == 9  # the nn.Softmax module
    assert finding.fix is not None
    assert "return self.fc(x)\n" in apply(text, finding.fix.edits)


def test_removed_call_keeps_precedence() -> None:
    text, found = check(
        """
        def step(a, b, y):
            return F.cross_entropy(F.softmax(a + b, dim=1).view(-1, 3), y)
        """
    )
    finding = only(found, "NP104")
    assert finding.fix is not None
    assert "F.cross_entropy((a + b).view(-1, 3), y)" in apply(text, finding.fix.edits)


def test_double_log_softmax_is_a_warning_that_says_so() -> None:
    _, found = check(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 3)

            def forward(self, x):
                return self.fc(x).log_softmax(dim=-1)

        loss = F.cross_entropy(Net()(torch.randn(2, 8)), torch.tensor([0, 1]))
        """
    )
    finding = only(found, "NP104")
    assert finding.severity is Severity.WARNING
    assert "double log-softmax" in finding.message and "NLLLoss" in finding.message


def test_user_severity_override_still_applies() -> None:
    text = HEADER + "loss = F.cross_entropy(torch.randn(2, 3).softmax(1), torch.tensor([0, 1]))\n"
    config = Config.default(root=FIXTURES).with_overrides(select=["NP104"])
    config.severity["NP104"] = Severity.INFO
    found = check_text(text, "script.py", config, "script.py")
    assert [f.severity for f in found] == [Severity.INFO]


def test_model_passed_as_parameter_is_the_files_only_model() -> None:
    _, found = check(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 1)

            def forward(self, x):
                return self.fc(x).sigmoid()

        def train(model, loader, optimizer):
            criterion = nn.BCEWithLogitsLoss()
            for x, y in loader:
                loss = criterion(model(x).squeeze(1), y)
                loss.backward()

        train(Net(), [], None)
        """
    )
    assert only(found, "NP105").range.start.line == 11


def test_two_models_and_a_parameter_stay_silent() -> None:
    _, found = check(
        """
        a = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))
        b = nn.Sequential(nn.Linear(8, 3))

        def train(model, x, y):
            return F.cross_entropy(model(x), y)
        """,
        ["NP104"],
    )
    assert found == []


def test_bce_fix_is_withheld_when_the_criterion_also_gets_probabilities() -> None:
    _, found = check(
        """
        logits_model = nn.Sequential(nn.Linear(8, 1))
        prob_model = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
        criterion = nn.BCELoss()

        def step(x, y):
            return criterion(logits_model(x), y) + criterion(prob_model(x), y)
        """
    )
    finding = only(found, "NP106")
    assert finding.fix is None
    assert "line 10" in finding.message and "BCEWithLogitsLoss" in finding.message


def test_bce_fix_swaps_the_constructor() -> None:
    text, found = check(
        """
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
        criterion = torch.nn.BCELoss(reduction="sum")
        loss = criterion(model(torch.randn(4, 8)).squeeze(1), torch.ones(4))
        """
    )
    finding = only(found, "NP106")
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    assert 'torch.nn.BCEWithLogitsLoss(reduction="sum")' in apply(text, finding.fix.edits)


def test_nll_on_softmax_fix_swaps_in_log_softmax() -> None:
    text, found = check(
        """
        def step(logits, y):
            return F.nll_loss(logits.softmax(dim=1), y)
        """
    )
    finding = only(found, "NP107")
    assert finding.fix is not None and finding.fix.applicability == "safe"
    assert "F.nll_loss(logits.log_softmax(dim=1), y)" in apply(text, finding.fix.edits)


def test_single_unit_softmax_needs_a_known_width_and_the_feature_dim() -> None:
    _, found = check(
        """
        WIDTH = 1
        a = nn.Sequential(nn.Linear(8, WIDTH), nn.Softmax(dim=-1))
        b = nn.Sequential(nn.Linear(8, 1), nn.Softmax(dim=0))
        c = nn.Sequential(nn.Linear(8, 1), nn.Flatten(0), nn.Softmax(dim=0))
        """
    )
    assert [(f.code, f.range.start.line) for f in found] == [("NP107", 6)]
    assert "always outputs 1.0" in found[0].message


def test_recursive_and_self_referencing_code_does_not_crash() -> None:
    _, found = check(
        """
        class Loop(nn.Module):
            def forward(self, x):
                return self(x)

        def make():
            return make()

        x = F.softmax(x, dim=1)
        loss = F.cross_entropy(Loop()(x), y) + F.cross_entropy(make()(x), y)
        loss = loss + F.cross_entropy(x, y)
        """
    )
    assert [(f.code, f.range.start.line) for f in found] == [("NP104", 12)]


def test_lightning_loss_attribute_and_self_call() -> None:
    _, found = check(
        """
        import lightning as L

        class Lit(L.LightningModule):
            def __init__(self):
                super().__init__()
                self.head = nn.Linear(16, 5)
                self.criterion = nn.NLLLoss()

            def forward(self, x):
                return self.head(x)

            def training_step(self, batch, batch_idx):
                x, y = batch
                return self.criterion(self(x), y)
        """
    )
    finding = only(found, "NP107")
    assert finding.range.start.line == 11  # the nn.NLLLoss() constructor
    assert "CrossEntropyLoss" in finding.message


@pytest.mark.parametrize("code", CODES)
def test_docs_example_fires_where_it_says(code: str) -> None:
    rule = get_rule(code)
    assert rule is not None
    example = rule.doc_sections()["Example"]
    snippet = re.search(r"```python\n(.*?)```", example, re.S)
    assert snippet is not None
    text = HEADER + snippet.group(1)
    expected = {e for e in expectations(text) if e[1] == code}
    assert expected
    actual = {(f.range.start.line, f.code, f.severity.value) for f in findings(text, [code])}
    assert actual == expected


def test_softmax_in_a_list_of_layers_is_removed_from_the_list() -> None:
    text, found = check(
        """
        layers = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(dim=1)]
        model = nn.Sequential(*layers)
        loss = F.cross_entropy(model(torch.randn(2, 8)), torch.tensor([0, 1]))
        """
    )
    finding = only(found, "NP104")
    assert finding.fix is not None
    fixed = apply(text, finding.fix.edits)
    assert "layers = [nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)]\n" in fixed


def test_input_read_elsewhere_keeps_the_call_site_fix_safe() -> None:
    _, found = check(
        """
        def step(model, x, y):
            logits = model(x)
            loss = F.cross_entropy(F.softmax(logits, dim=1), y)
            return loss, logits.argmax(dim=1)
        """
    )
    finding = only(found, "NP104")
    assert finding.fix is not None and finding.fix.applicability == "safe"


def test_parameter_model_follows_what_the_callers_pass() -> None:
    _, found = check(
        """
        import torchvision

        probs_net = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))
        other = nn.Sequential(nn.Linear(8, 3))

        def evaluate(model, x, y):
            return F.cross_entropy(model(x), y)

        evaluate(torch.compile(probs_net), None, None)
        """,
        ["NP104"],
    )
    assert [f.range.start.line for f in found] == [7]


def test_parameter_model_given_an_unknown_model_stays_silent() -> None:
    _, found = check(
        """
        import torchvision

        probs_net = nn.Sequential(nn.Linear(8, 3), nn.Softmax(dim=1))

        def evaluate(model, x, y):
            return F.cross_entropy(model(x), y)

        evaluate(torchvision.models.resnet18(), None, None)
        """,
        ["NP104"],
    )
    assert found == []


def test_a_list_of_layers_grown_in_place_is_not_read_as_its_literal() -> None:
    _, found = check(
        """
        layers = [nn.Linear(8, 1)]
        layers.append(nn.Sigmoid())
        model = nn.Sequential(*layers)
        loss = nn.BCELoss()(model(torch.randn(4, 8)), torch.ones(4, 1))
        """
    )
    assert found == []


def test_a_submodule_changed_after_it_is_built_is_not_trusted() -> None:
    _, found = check(
        """
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(nn.Linear(8, 1))
                self.net.add_module("sigmoid", nn.Sigmoid())

            def forward(self, x):
                return self.net(x)

        loss = nn.BCELoss()(Net()(torch.randn(4, 8)), torch.ones(4, 1))
        """
    )
    assert found == []
