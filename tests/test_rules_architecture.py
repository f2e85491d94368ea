"""NP108, NP109, NP117 beyond the fixtures: options, messages, the RNN fix, docs examples."""

from __future__ import annotations

import ast
import re
import textwrap

import pytest

from nnprobe.core.config import Config
from nnprobe.core.finding import Finding
from nnprobe.core.registry import get_rule
from nnprobe.inspectors.script.handler import check_text
from nnprobe.report.source import apply_edits


def run(source: str, code: str, **options: object) -> list[Finding]:
    config = Config.default().with_overrides(select=[code])
    if options:
        config.rules[code] = {key.replace("_", "-"): value for key, value in options.items()}
    text = textwrap.dedent(source)
    return [f for f in check_text(text, "snippet.py", config) if f.code == code]


def lines(findings: list[Finding]) -> list[int]:
    return sorted(f.range.start.line for f in findings)


THREE_LAYER_TANH = """
import torch
from torch import nn

model = nn.Sequential(
    nn.Linear(8, 16),
    nn.Tanh(),
    nn.Linear(16, 16),
    nn.Tanh(),
    nn.Linear(16, 1),
)
"""


def test_np108_message_names_the_activation_and_its_neighbours() -> None:
    (first, second) = run(THREE_LAYER_TANH, "NP108")
    assert first.message.startswith("tanh between layer 0 (Linear) and layer 2 (Linear)")
    assert "3 weight layers" in first.message
    assert "ReLU" in first.message and "He" in first.message
    assert first.range.start.line == 7 and first.range.start.column == 5
    assert first.range.end.column == len("    nn.Tanh()") + 1
    assert second.message.startswith("tanh between layer 2 (Linear) and layer 4 (Linear)")


def test_np108_min_weight_layers_option() -> None:
    assert run(THREE_LAYER_TANH, "NP108", min_weight_layers=4) == []
    two = (
        "import torch\nfrom torch import nn\n"
        "m = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))\n"
    )
    assert lines(run(two, "NP108", min_weight_layers=2)) == [3]
    assert run(two, "NP108") == []


def test_np108_reports_a_shared_activation_module_once() -> None:
    source = """
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.c = nn.Linear(4, 4)
            self.d = nn.Linear(4, 1)
            self.act = nn.Sigmoid()

        def forward(self, x):
            return self.d(self.act(self.c(self.act(self.b(self.act(self.a(x)))))))
    """
    findings = run(source, "NP108")
    assert lines(findings) == [12]
    assert "sigmoid's derivative is at most 0.25" in findings[0].message


def test_np109_fix_switches_to_tanh_and_is_unsafe() -> None:
    source = "import torch\nrnn = torch.nn.RNN(4, 8, nonlinearity='relu')\n"
    (finding,) = run(source, "NP109")
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    fixed = apply_edits(source, finding.fix.edits)
    ast.parse(fixed)
    assert "nonlinearity='tanh'" in fixed
    assert ctx_range(source, finding) == "nonlinearity='relu'"


def test_np109_no_fix_when_the_value_is_not_a_literal() -> None:
    source = 'import torch\nACT = "relu"\nrnn = torch.nn.RNNCell(4, 8, nonlinearity=ACT)\n'
    (finding,) = run(source, "NP109")
    assert finding.fix is None
    assert "RNNCell with nonlinearity='relu'" in finding.message


def test_np109_identity_recurrence_is_left_alone() -> None:
    source = """
    import torch
    from torch import nn

    rnn = nn.RNN(2, 100, nonlinearity="relu")
    nn.init.eye_(rnn.weight_hh_l0)
    """
    assert run(source, "NP109") == []


def test_np109_hand_written_cell_message_names_the_state() -> None:
    source = """
    import torch
    from torch import nn

    class Cell(nn.Module):
        def __init__(self):
            super().__init__()
            self.wx = nn.Linear(3, 8)
            self.wh = nn.Linear(8, 8)
            self.act = nn.ReLU()

        def forward(self, xs):
            hidden = torch.zeros(8)
            for x_t in xs:
                hidden = self.act(self.wx(x_t) + self.wh(hidden))
            return hidden
    """
    (finding,) = run(source, "NP109")
    assert "recurrent state 'hidden' goes through relu" in finding.message
    assert finding.range.start.line == 15


DEEP = """
import torch
from torch import nn

def make(depth=8):
    layers = []
    for _ in range(depth):
        layers.append(nn.Linear(32, 32))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)

model = make()
"""


def test_np117_range_is_the_sequential_head_and_counts_layers() -> None:
    (finding,) = run(DEEP, "NP117")
    assert ctx_range(DEEP, finding) == "nn.Sequential"
    assert finding.message.startswith("8 stacked weight layers (8 x Linear)")


def test_np117_min_depth_option() -> None:
    assert run(DEEP, "NP117", min_depth=9) == []
    assert len(run(DEEP.replace("make()", "make(depth=4)"), "NP117", min_depth=4)) == 1
    assert run(DEEP.replace("make()", "make(depth=4)"), "NP117") == []


def test_np117_class_is_reported_on_its_name() -> None:
    source = """
    import torch
    from torch import nn
    import torch.nn.functional as F

    class  Tower(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Conv2d(8, 8, 3, padding=1) for _ in range(9)])

        def forward(self, x):
            for layer in self.layers:
                x = F.relu(layer(x))
            return x
    """
    (finding,) = run(source, "NP117")
    assert ctx_range(textwrap.dedent(source), finding) == "Tower"
    assert "9 stacked weight layers (9 x Conv2d)" in finding.message


def test_np117_reports_the_inner_sequential_not_its_wrapper_too() -> None:
    source = (
        DEEP
        + """
class Wrapper(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = make()

    def forward(self, x):
        return self.body(x)
"""
    )
    assert lines(run(source, "NP117")) == [10]


@pytest.mark.parametrize("code", ["NP108", "NP109", "NP117"])
def test_docs_example_fires_where_it_says(code: str) -> None:
    rule = get_rule(code)
    assert rule is not None
    match = re.search(r"```python\n(.*?)```", rule.doc_sections()["Example"], re.S)
    assert match is not None
    source = "import torch\nfrom torch import nn\n" + match.group(1)
    expected = [n for n, line in enumerate(source.splitlines(), 1) if f"[{code}]" in line]
    assert expected
    assert lines(run(source, code)) == expected


def ctx_range(source: str, finding: Finding) -> str:
    """The source text a finding's range covers (single-line ranges)."""
    r = finding.range
    assert r.start.line == r.end.line
    return source.splitlines()[r.start.line - 1][r.start.column - 1 : r.end.column - 1]
