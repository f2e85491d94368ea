"""NP110, NP111, NP112 beyond the fixtures: the init swap fix, options, messages, matching an
init to its layers through apply/modules loops, docs examples."""

from __future__ import annotations

import ast
import re
import textwrap

import pytest

from nnprobe.core.config import Config
from nnprobe.core.finding import Confidence, Finding
from nnprobe.core.registry import get_rule
from nnprobe.inspectors.script.handler import check_text
from nnprobe.report.source import apply_edits


def run(source: str, code: str, **options: object) -> list[Finding]:
    config = Config.default().with_overrides(select=[code])
    if options:
        config.rules[code] = {key.replace("_", "-"): value for key, value in options.items()}
    return [f for f in check_text(source, "snippet.py", config) if f.code == code]


def fixed(source: str, finding: Finding) -> str:
    assert finding.fix is not None
    result = apply_edits(source, finding.fix.edits)
    ast.parse(result)
    return result


def net(init_lines: str, activation: str = "F.relu", hidden: int = 256) -> str:
    """A three-layer module whose two hidden layers feed `activation`, with init code."""
    body = textwrap.indent(textwrap.dedent(init_lines).strip(), " " * 8)
    return f"""import math
import torch
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, {hidden})
        self.fc2 = nn.Linear({hidden}, {hidden})
        self.fc3 = nn.Linear({hidden}, 10)
{body}

    def forward(self, x):
        x = {activation}(self.fc1(x))
        x = {activation}(self.fc2(x))
        return self.fc3(x)
"""


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("nn.init.xavier_uniform_(self.fc1.weight)", "nn.init.kaiming_uniform_(self.fc1.weight)"),
        (
            "nn.init.xavier_normal_(self.fc1.weight, gain=1.0)",
            "nn.init.kaiming_normal_(self.fc1.weight)",
        ),
        (
            "torch.nn.init.xavier_uniform_(tensor=self.fc1.weight, generator=None)",
            "torch.nn.init.kaiming_uniform_(tensor=self.fc1.weight, generator=None)",
        ),
        ("nn.init.xavier_normal(self.fc1.weight)", "nn.init.kaiming_normal_(self.fc1.weight)"),
    ],
)
def test_np110_fix_swaps_glorot_for_he_before_relu(call: str, expected: str) -> None:
    source = net(call)
    (finding,) = run(source, "NP110")
    assert finding.fix is not None and finding.fix.applicability == "safe"
    assert expected in fixed(source, finding)
    assert "feeds relu" in finding.message and "He init" in finding.message


def test_np110_fix_swaps_he_for_glorot_before_tanh_and_drops_kaiming_arguments() -> None:
    source = net(
        """
        nn.init.kaiming_normal_(
            self.fc2.weight, a=0, mode="fan_out", nonlinearity="relu"
        )
        """,
        activation="torch.tanh",
    )
    (finding,) = run(source, "NP110")
    assert "nn.init.xavier_normal_(self.fc2.weight)\n" in fixed(source, finding)
    assert run(fixed(source, finding), "NP110") == []
    assert "fc2 (Linear), which feeds tanh" in finding.message


def test_np110_fix_of_a_module_loop_is_unsafe() -> None:
    source = net(
        """
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        """
    )
    (finding,) = run(source, "NP110")
    assert finding.fix is not None and finding.fix.applicability == "unsafe"
    assert "fc1 (Linear), fc2 (Linear), which feed relu" in finding.message
    assert "nn.init.kaiming_uniform_(m.weight)" in fixed(source, finding)


def test_np110_bare_import_without_the_other_function_has_no_fix() -> None:
    source = net("xavier_uniform_(self.fc1.weight)").replace(
        "from torch import nn\n",
        "from torch import nn\nfrom torch.nn.init import xavier_uniform_\n",
    )
    (finding,) = run(source, "NP110")
    assert finding.fix is None
    with_both = source.replace("import xavier_uniform_", "import kaiming_uniform_, xavier_uniform_")
    (finding,) = run(with_both, "NP110")
    assert "kaiming_uniform_(self.fc1.weight)" in fixed(with_both, finding)


@pytest.mark.parametrize(
    "call",
    [
        "nn.init.kaiming_normal_(self.fc1.weight, nonlinearity='tanh')",
        "nn.init.kaiming_uniform_(self.fc1.weight, a=math.sqrt(5))",
        "nn.init.kaiming_uniform_(self.fc1.weight, a=2.0)",
        "nn.init.kaiming_normal_(self.fc1.weight, nonlinearity=NONLINEARITY)",
    ],
)
def test_np110_kaiming_not_at_relu_gain_is_not_he(call: str) -> None:
    assert run(net(call, activation="torch.tanh"), "NP110") == []


@pytest.mark.parametrize(
    "call",
    [
        "nn.init.xavier_uniform_(self.fc1.weight, gain=nn.init.calculate_gain('relu'))",
        "nn.init.xavier_uniform_(self.fc1.weight, gain=math.sqrt(2))",
        "nn.init.xavier_uniform_(self.fc1.weight, gain=2 ** 0.5)",
        "nn.init.xavier_uniform_(self.fc1.weight, gain=nn.init.calculate_gain('leaky_relu', 0.2))",
    ],
)
def test_np110_xavier_with_a_relu_gain_is_fine(call: str) -> None:
    assert run(net(call), "NP110") == []


def test_np110_selu_wants_lecun_not_he() -> None:
    assert run(net("nn.init.xavier_normal_(self.fc1.weight)", activation="F.selu"), "NP110") == []


def test_np111_std_and_width_options() -> None:
    source = net("nn.init.normal_(self.fc1.weight, std=0.3)", hidden=16)
    assert run(source, "NP111") == []
    (finding,) = run(source, "NP111", max_std=0.25)
    assert "weights of fc1 (Linear), 784 -> 16 drawn with std 0.3" in finding.message
    assert "sums 784 inputs" in finding.message and "1/sqrt(fan_in) = 0.0357" in finding.message
    narrow = net("nn.init.normal_(self.fc2.weight, std=1.0)", hidden=16)
    assert run(narrow, "NP111") == []
    assert len(run(narrow, "NP111", min_width=8)) == 1


def test_np111_range_is_the_std_argument() -> None:
    source = net("nn.init.normal_(self.fc1.weight, mean=0.0, std=1.0)")
    (finding,) = run(source, "NP111")
    line = source.splitlines()[finding.range.start.line - 1]
    assert line[finding.range.start.column - 1 : finding.range.end.column - 1] == "std=1.0"


def test_np111_width_read_at_the_call_site() -> None:
    source = """import torch
from torch import nn


class Regression(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        nn.init.normal_(self.linear.weight, std=1.0)

    def forward(self, x):
        return self.linear(x)


small = Regression(4, 3)
"""
    assert run(source, "NP111") == []
    wide = source.replace("Regression(4, 3)", "Regression(784, 10)")
    assert len(run(wide, "NP111")) == 1
    unknown = source.replace("Regression(4, 3)", "Regression(x.shape[1], 3)")
    (finding,) = run(unknown, "NP111")
    assert finding.confidence is Confidence.MEDIUM
    opaque = source.replace("small = Regression(4, 3)\n", "").replace(
        "nn.Linear(n_in, n_out)", "nn.Linear(*sizes)"
    )
    (finding,) = run(opaque, "NP111")
    assert finding.confidence is Confidence.LOW


def test_np111_randn_scaled_by_a_large_factor() -> None:
    source = """import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.W = nn.Parameter(torch.randn(512, 256) * 0.7)
        self.U = nn.Parameter(torch.randn(256, 10) * 0.1)

    def forward(self, x):
        return torch.mm(x @ self.W, self.U)
"""
    (finding,) = run(source, "NP111")
    assert finding.range.start.line == 8
    assert "weight 'W' is torch.randn(512, 256) * 0.7 (std 0.7)" in finding.message
    assert "sums 512 inputs" in finding.message


def test_np112_message_and_range() -> None:
    source = net("nn.init.zeros_(self.fc2.weight)")
    (finding,) = run(source, "NP112")
    assert finding.message.startswith(
        "zeros_ sets the weights of fc2 (Linear), a hidden layer of a net with 3 weight layers"
    )
    line = source.splitlines()[finding.range.start.line - 1]
    assert line.strip() == "nn.init.zeros_(self.fc2.weight)"
    assert finding.range.end.column == len(line) + 1


def test_np112_reused_layer_is_not_multi_layer() -> None:
    source = """import torch
from torch import nn


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        nn.init.zeros_(self.fc.weight)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))
"""
    assert run(source, "NP112") == []


def test_np112_dcgan_classname_loop() -> None:
    source = """import torch
from torch import nn


def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.constant_(m.weight.data, 0.0)
    elif classname.find("BatchNorm") != -1:
        nn.init.constant_(m.weight.data, 1.0)


netD = nn.Sequential(
    nn.Conv2d(3, 64, 4), nn.LeakyReLU(0.2), nn.Conv2d(64, 128, 4), nn.BatchNorm2d(128),
    nn.LeakyReLU(0.2), nn.Conv2d(128, 1, 4), nn.Sigmoid(),
)
netD.apply(weights_init)
"""
    (finding,) = run(source, "NP112")
    assert finding.range.start.line == 8
    assert "layer 0 (Conv2d), layer 2 (Conv2d), hidden layers" in finding.message


@pytest.mark.parametrize("code", ["NP110", "NP111", "NP112"])
def test_docs_example_fires_where_it_says(code: str) -> None:
    rule = get_rule(code)
    assert rule is not None
    match = re.search(r"```python\n(.*?)```", rule.doc_sections()["Example"], re.S)
    assert match is not None
    source = "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n" + match.group(
        1
    )
    expected = [n for n, line in enumerate(source.splitlines(), 1) if f"[{code}]" in line]
    assert expected
    assert sorted(f.range.start.line for f in run(source, code)) == expected
