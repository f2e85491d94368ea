"""For rule unit tests: run one static rule on a snippet, and apply the fixes it offers."""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterable

from nnprobe.core.config import Config
from nnprobe.core.finding import Edit, Finding
from nnprobe.inspectors.script.handler import check_text


def run_rule(source: str, code: str, **options: object) -> list[Finding]:
    """Findings of rule `code` alone on `source` (dedented), with its options set."""
    config = Config.default().with_overrides(select=[code])
    if options:
        config.rules[code] = {key.replace("_", "-"): value for key, value in options.items()}
    text = textwrap.dedent(source)
    return [f for f in check_text(text, "snippet.py", config) if f.code == code]


def apply_edits(text: str, edits: Iterable[Edit]) -> str:
    """`text` with edits applied (1-based, end-exclusive character positions)."""
    lines = text.split("\n")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column - 1

    for edit in sorted(edits, key=lambda e: (e.range.start, e.range.end), reverse=True):
        start = offset(edit.range.start.line, edit.range.start.column)
        end = offset(edit.range.end.line, edit.range.end.column)
        text = text[:start] + edit.new_text + text[end:]
    return text


def apply_fixes(text: str, findings: Iterable[Finding]) -> str:
    """`text` with every finding's fix applied; the result must parse."""
    edits = [edit for f in findings if f.fix is not None for edit in f.fix.edits]
    fixed = apply_edits(text, edits)
    ast.parse(fixed)
    return fixed


def example_lines(code: str) -> tuple[list[int], list[int]]:
    """(expected, actual) finding lines of rule `code` on the Python block of its docs' Example
    section, with torch imports put in front when the block has none."""
    import re

    from nnprobe.core.registry import get_rule

    rule = get_rule(code)
    assert rule is not None
    match = re.search(r"```python\n(.*?)```", rule.doc_sections()["Example"], re.S)
    assert match is not None, f"{code}: the Example section has no python block"
    body = match.group(1)
    head = "" if "import torch" in body else "import torch\nimport torch.nn.functional as F\n"
    head += "" if "from torch import nn" in body else "from torch import nn\n"
    source = head + body
    expected = [n for n, line in enumerate(source.splitlines(), 1) if f"[{code}]" in line]
    actual = [f.range.start.line for f in run_rule(source, code)]
    return expected, actual
