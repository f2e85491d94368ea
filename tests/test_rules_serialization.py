"""NP122 (unsafe torch.load): the fixes, applied to the source and parsed again."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest
from rule_helpers import apply_fixes, example_lines, run_rule

FIXTURE = Path(__file__).parent / "fixtures" / "static" / "np122_unsafe_torch_load.py"


def _weights_only(tree: ast.AST) -> list[object]:
    """The weights_only keyword of every torch.load-like call, in source order."""
    values = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name == "load":
                keyword = next((k for k in node.keywords if k.arg == "weights_only"), None)
                values.append(ast.literal_eval(keyword.value) if keyword else None)
    return values


def test_fixing_the_fixture_leaves_nothing_to_report() -> None:
    text = FIXTURE.read_text(encoding="utf-8")
    findings = run_rule(text, "NP122")
    fixable = [f for f in findings if f.fix is not None]
    assert len(fixable) == len(findings) - 1  # weights_only=UNSAFE is a name: no literal to flip
    fixed = apply_fixes(text, fixable)
    remaining = run_rule(fixed, "NP122")
    assert [f.range.start.line for f in remaining] == [24]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ('torch.load("a.pt")', 'torch.load("a.pt", weights_only=True)'),
        ('torch.load(("a.pt"))', 'torch.load(("a.pt"), weights_only=True)'),
        (
            'torch.load(f, map_location="cpu")',
            'torch.load(f, map_location="cpu", weights_only=True)',
        ),
        ("torch.load(\n    f,\n)", "torch.load(\n    f, weights_only=True,\n)"),
        ("torch.load(f  # the file\n)", "torch.load(f, weights_only=True  # the file\n)"),
        ("torch.load(f, weights_only=False)", "torch.load(f, weights_only=True)"),
    ],
)
def test_fix_edits(before: str, after: str) -> None:
    source = f"import torch\nf = 'x.pt'\nstate = {before}\n"
    (finding,) = run_rule(source, "NP122")
    assert finding.fix is not None
    fixed = apply_fixes(source, [finding])
    assert fixed == f"import torch\nf = 'x.pt'\nstate = {after}\n"
    assert _weights_only(ast.parse(fixed)) == [True]


def test_applicability_depends_on_what_is_loaded() -> None:
    source = textwrap.dedent(
        """
        import torch
        model = torch.nn.Linear(2, 2)
        model.load_state_dict(torch.load("weights.pt"))
        whole = torch.load("model.pt")
        legacy = torch.load("legacy.pt", weights_only=False)
        """
    )
    state_dict, whole, legacy = run_rule(source, "NP122")
    assert state_dict.fix is not None and state_dict.fix.applicability == "safe"
    assert "state_dict loads unchanged" in state_dict.message
    assert whole.fix is not None and whole.fix.applicability == "unsafe"
    assert legacy.fix is not None and legacy.fix.applicability == "unsafe"
    assert "weights_only=False" in legacy.message
    assert (legacy.range.start.column, legacy.range.end.column) == (34, 52)


def test_aliases_and_splats() -> None:
    source = """
    from torch import load as torch_load
    import torch
    a = torch_load("a.pt")
    kwargs = {"weights_only": True}
    b = torch.load("b.pt", **kwargs)
    """
    findings = run_rule(source, "NP122")
    assert [f.range.start.line for f in findings] == [4]
    assert findings[0].message.startswith("torch_load(...) without weights_only=True")


@pytest.mark.parametrize("code", ["NP122"])
def test_docs_example_fires_where_it_says(code: str) -> None:
    expected, actual = example_lines(code)
    assert expected and actual == expected
