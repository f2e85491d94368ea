"""Optimizers, schedulers and training loops in a script: where parameters get updated, and how.

A training loop is the innermost `for`/`while` that calls `.backward()`; its epoch loop is the loop
around it (or itself when there is none), whose count is known when it iterates `range(<static>)`.
Scripts that hand the loop to a framework (`trainer.fit(...)`, Keras-style `model.fit(...)`) are
marked so rules can stay silent rather than guess.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from nnprobe.inspectors.script.lists import range_length
from nnprobe.inspectors.script.walk import walk

if TYPE_CHECKING:
    from nnprobe.inspectors.script.context import ScriptContext

OPTIM = "torch.optim."
SCHEDULER_PREFIXES = ("torch.optim.lr_scheduler.", "transformers.get_", "timm.scheduler.")
FRAMEWORKS = frozenset(
    {"lightning", "pytorch_lightning", "transformers", "skorch", "accelerate", "ignite", "keras"}
)
Loop = ast.For | ast.AsyncFor | ast.While


@dataclass
class OptimizerCall:
    call: ast.Call
    qualname: str  # torch.optim.SGD

    @property
    def kind(self) -> str:
        return self.qualname.rsplit(".", 1)[-1]


@dataclass
class TrainingLoop:
    loop: Loop  # innermost loop around backward()
    backward: list[ast.Call] = field(default_factory=list)
    steps: list[ast.Call] = field(default_factory=list)
    zero_grads: list[ast.AST] = field(default_factory=list)
    epoch_loop: Loop | None = None
    epochs: int | None = None  # statically known epoch count


class LoopIndex:
    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx

    @cached_property
    def optimizers(self) -> list[OptimizerCall]:
        result = []
        for call in self.ctx.calls:
            name = self.ctx.call_name(call)
            if (
                name
                and name.startswith(OPTIM)
                and name.count(".") == 2
                and name.rsplit(".", 1)[-1][:1].isupper()
                and name != "torch.optim.Optimizer"
            ):
                result.append(OptimizerCall(call, name))
        return result

    @cached_property
    def schedulers(self) -> list[ast.Call]:
        return [
            call
            for call in self.ctx.calls
            if (name := self.ctx.call_name(call)) and name.startswith(SCHEDULER_PREFIXES)
        ]

    @cached_property
    def changes_lr_by_hand(self) -> bool:
        """`group["lr"] = ...` or `optimizer.param_groups[0]["lr"] *= ...` anywhere."""
        for node in self.ctx.nodes(ast.Assign, ast.AugAssign):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign):
                targets = [node.target]
            for target in targets:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.slice, ast.Constant)
                    and target.slice.value in ("lr", "learning_rate")
                ):
                    return True
        return False

    @cached_property
    def hands_loop_to_framework(self) -> bool:
        """A Lightning/HF/skorch-style `fit`/`train` call drives training out of our sight."""
        for call in self.ctx.calls:
            func = call.func
            if not isinstance(func, ast.Attribute) or func.attr not in ("fit", "train"):
                continue
            receiver = self.ctx.resolve(func.value)
            if isinstance(receiver, ast.Call):
                name = self.ctx.call_name(receiver) or ""
                if name.split(".")[0] in FRAMEWORKS or name.endswith("Trainer"):
                    return True
            elif "trainer" in self.ctx.source(func.value).lower():
                return True
        return False

    def _is_zero_grad(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            return node.func.attr in ("zero_grad", "clear_grad")
        if isinstance(node, ast.Assign):
            return any(isinstance(t, ast.Attribute) and t.attr == "grad" for t in node.targets)
        return False

    @cached_property
    def training_loops(self) -> list[TrainingLoop]:
        loops: dict[ast.AST, TrainingLoop] = {}
        for call in self.ctx.calls:
            func = call.func
            if not isinstance(func, ast.Attribute) or func.attr != "backward":
                continue
            loop = self._innermost_loop(call)
            if loop is None:
                continue
            entry = loops.setdefault(loop, TrainingLoop(loop))
            entry.backward.append(call)
        for entry in loops.values():
            for node in walk(entry.loop):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    if node.func.attr == "step" and not self._is_scheduler_step(node):
                        entry.steps.append(node)
                if self._is_zero_grad(node):
                    entry.zero_grads.append(node)
            entry.epoch_loop = self._outer_loop(entry.loop) or entry.loop
            entry.epochs = self._count(entry.epoch_loop)
        return sorted(loops.values(), key=lambda e: (e.loop.lineno, e.loop.col_offset))

    def _is_scheduler_step(self, call: ast.Call) -> bool:
        assert isinstance(call.func, ast.Attribute)
        receiver = self.ctx.resolve(call.func.value)
        if isinstance(receiver, ast.Call):
            name = self.ctx.call_name(receiver) or ""
            return name.startswith(SCHEDULER_PREFIXES)
        text = self.ctx.source(call.func.value).lower()
        return "sched" in text or "lr_" in text

    def _innermost_loop(self, node: ast.AST) -> Loop | None:
        for ancestor in self.ctx.ancestors(node):
            if isinstance(ancestor, ast.For | ast.AsyncFor | ast.While):
                return ancestor
            if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef):
                # A per-batch step function: its loop is at the call site.
                return self._loop_around_calls_of(ancestor)
        return None

    def _loop_around_calls_of(self, fn: ast.FunctionDef | ast.AsyncFunctionDef) -> Loop | None:
        for call in self.ctx.calls:
            if isinstance(call.func, ast.Name) and call.func.id == fn.name:
                loop = self._innermost_loop(call)
                if loop is not None:
                    return loop
        return None

    def _outer_loop(self, loop: Loop) -> Loop | None:
        """The loop around `loop`, following one level of function call (train(...) per epoch)."""
        for ancestor in self.ctx.ancestors(loop):
            if isinstance(ancestor, ast.For | ast.AsyncFor | ast.While):
                return ancestor
            if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef):
                return self._loop_around_calls_of(ancestor)
        return None

    def _count(self, loop: Loop) -> int | None:
        if not isinstance(loop, ast.For | ast.AsyncFor):
            return None
        it = loop.iter
        if isinstance(it, ast.Call) and self.ctx.call_name(it) in (
            "range",
            "tqdm.trange",
            "trange",
        ):
            return range_length([self.ctx.value(a) for a in it.args])
        return None
