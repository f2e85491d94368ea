"""NP122: checkpoints read with `torch.load` in a way that can run code from the file.

`torch.load` unpickles: unless `weights_only=True`, a checkpoint can carry arbitrary Python objects
whose reconstruction runs code. The fix is mechanical (add or flip the keyword), so it comes with
an edit; the edit is checked to still parse before it is offered.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterable, Sequence

from nnprobe.core.finding import Confidence, Edit, Finding, Fix, Position, Range, Severity
from nnprobe.core.registry import register
from nnprobe.inspectors.script.base import StaticRule
from nnprobe.inspectors.script.context import ScriptContext

TORCH_LOAD = ("torch.load", "torch.serialization.load")


def edited_source(ctx: ScriptContext, edits: Sequence[Edit]) -> str:
    """The script text (lines joined by newlines) with `edits` applied; positions are the 1-based,
    end-exclusive character positions findings use."""
    lines = list(ctx.lines)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line) + 1)
    text = "\n".join(lines)

    def offset(position: Position) -> int:
        line = min(max(position.line, 1), len(starts) - 1) if lines else 1
        return min(starts[line - 1] + position.column - 1, len(text))

    for edit in sorted(edits, key=lambda e: (e.range.start, e.range.end), reverse=True):
        start, end = offset(edit.range.start), offset(edit.range.end)
        text = text[:start] + edit.new_text + text[end:]
    return text


def edits_parse(ctx: ScriptContext, edits: Sequence[Edit]) -> bool:
    """Whether the script still parses once `edits` are applied (fixes must keep valid Python)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            ast.parse(edited_source(ctx, edits))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _walk_text(
    ctx: ScriptContext, start: Position, end: Position
) -> Iterable[tuple[Position, str]]:
    """Each character between two positions with its position (newline between lines)."""
    line, column = start.line, start.column
    while (line, column) < (end.line, end.column) and line <= len(ctx.lines):
        text = ctx.lines[line - 1]
        if column > len(text):
            yield Position(line, column), "\n"
            line, column = line + 1, 1
            continue
        yield Position(line, column), text[column - 1]
        column += 1


def _after_last_argument(ctx: ScriptContext, call: ast.Call) -> Position | None:
    """Where a new keyword argument goes: after the last argument and any closing parentheses
    that wrap it, before a trailing comma or the call's own closing parenthesis."""
    arguments: list[ast.AST] = [*call.args, *call.keywords]
    if not arguments:
        return None
    position = max(ctx.range_of(a).end for a in arguments)
    call_end = ctx.range_of(call).end
    closing = Position(call_end.line, call_end.column - 1)  # the call's own ")"
    for at, char in _walk_text(ctx, position, closing):
        if char == ")":
            position = Position(at.line, at.column + 1)
        elif not char.isspace():
            break
    return position


def _is_state_dict_load(ctx: ScriptContext, call: ast.Call) -> bool:
    """`model.load_state_dict(torch.load(...))`: a state_dict of tensors loads with weights_only."""
    parent = ctx.parent(call)
    return (
        isinstance(parent, ast.Call)
        and isinstance(parent.func, ast.Attribute)
        and parent.func.attr == "load_state_dict"
    )


@register
class UnsafeTorchLoad(StaticRule):
    """
    ## What it does
    Flags `torch.load(...)` calls that do not pass `weights_only=True`.

    Calls that pass `weights_only=False` explicitly are flagged too, and `from torch import load`
    and `torch.serialization.load` are recognised.

    ## Why is this bad?
    `torch.load` reads checkpoints with Python's pickle. Without `weights_only=True` a checkpoint
    may contain any Python object, and unpickling it can run arbitrary code: loading a checkpoint
    downloaded from the internet, a shared drive or a model hub is then running someone else's
    program. `weights_only=True` restricts unpickling to tensors, primitive types and containers
    of them, which is all a `state_dict` needs. PyTorch 2.6 made it the default; spelling it out
    keeps the script safe on older versions and documents the intent.

    ## Example
    ```python
    import torch

    state = torch.load("checkpoint.pt", map_location="cpu")  # warning: [NP122]
    model.load_state_dict(state)
    ```

    ## How to fix
    Pass `weights_only=True` (the fix adds it). Save `model.state_dict()` rather than the whole
    model object, so the checkpoint loads under `weights_only=True`. If a checkpoint also holds
    objects of your own classes, register them with `torch.serialization.add_safe_globals`
    instead of turning the protection off. Keep `weights_only=False` only for files you created
    yourself and trust, and mark the line with `# nnprobe: ignore[NP122]`.

    ## Options
    None.

    ## References
    - PyTorch documentation, `torch.load` and "Serialization semantics: weights_only"
    - TorchFix rule TOR102 (`torch.load` without `weights_only`)
    """

    code = "NP122"
    name = "unsafe-torch-load"
    message = "torch.load without weights_only=True can run arbitrary code from the checkpoint"
    severity = Severity.WARNING
    confidence = Confidence.HIGH
    fixable = True

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        for call, name in ctx.calls_to(*TORCH_LOAD):
            keyword = next((kw for kw in call.keywords if kw.arg == "weights_only"), None)
            if keyword is None:
                if ctx.has_kwargs_splat(call):
                    continue  # weights_only may be in the **kwargs
                yield self._missing(ctx, call, name)
                continue
            value = ctx.value(keyword.value)
            if value is False:
                yield self._disabled(ctx, call, name, keyword)

    def _missing(self, ctx: ScriptContext, call: ast.Call, name: str) -> Finding:
        shown = ctx.source(call.func) or name
        state_dict = _is_state_dict_load(ctx, call)
        if state_dict:
            detail = "a state_dict loads unchanged with it"
        else:
            detail = "a whole pickled model must then be saved as a state_dict instead"
        message = (
            f"{shown}(...) without weights_only=True unpickles any Python object (before "
            "PyTorch 2.6), so a malicious checkpoint can run code when loaded; pass "
            f"weights_only=True ({detail})"
        )
        fix = None
        position = _after_last_argument(ctx, call)
        if position is not None:
            edit = Edit(Range(position, position), ", weights_only=True")
            if edits_parse(ctx, [edit]):
                fix = Fix(
                    "Add weights_only=True",
                    (edit,),
                    applicability="safe" if state_dict else "unsafe",
                )
        return self.report(ctx, call, message=message, fix=fix)

    def _disabled(
        self, ctx: ScriptContext, call: ast.Call, name: str, keyword: ast.keyword
    ) -> Finding:
        shown = ctx.source(call.func) or name
        message = (
            f"{shown}(..., weights_only=False) unpickles any Python object, so a malicious "
            "checkpoint can run code when loaded; use weights_only=True (save a state_dict, or "
            "allow your own classes with torch.serialization.add_safe_globals)"
        )
        fix = None
        if isinstance(keyword.value, ast.Constant) and keyword.value.value is False:
            edit = ctx.replace(keyword.value, "True")
            # Flipping it can break loading a checkpoint that pickles whole objects: review it.
            fix = Fix("Set weights_only=True", (edit,), applicability="unsafe")
        return self.report(ctx, keyword, message=message, fix=fix)
