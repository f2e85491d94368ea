"""The training script a log belongs to, and the lines of it that a log finding concerns.

A log finding is acted on in the script: the optimizer line (where a scheduler goes), the epoch
loop (where early stopping goes). The script is the configured one (`[tool.nnprobe.logs] script`)
or, searching the log's folder and its parents up to the config root as checkpoints do, the one
script that names the log (its file name, or its folder for TensorBoard) and builds an optimizer;
failing that, the only script there that builds an optimizer. Anything ambiguous: no script.

The copies onto the script are made by probe.source_map.SourceMap, keyed by anchor names
("optimizer", "epoch-loop") instead of module paths.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from nnprobe.core import reading
from nnprobe.core.config import Config
from nnprobe.core.finding import Edit, Fix, Position, Range
from nnprobe.probe.factory import script_context, search_dirs
from nnprobe.probe.source_map import SourceMap, display_for

OPTIMIZER = "optimizer"
EPOCH_LOOP = "epoch-loop"
_TORCH = re.compile(rb"^[ \t]*(?:import|from)[ \t]+torch\b", re.MULTILINE)


@dataclass
class ScriptAnchors:
    smap: SourceMap
    has_decay: bool  # a scheduler or a hand-written lr change
    optimizer_name: str | None  # the variable the optimizer is bound to
    after_optimizer: int | None = None  # the line after the optimizer's statement
    indent: str = ""

    def scheduler_fix(self, patience: int) -> Fix | None:
        """Insert a ReduceLROnPlateau line after the optimizer's statement."""
        if self.optimizer_name is None or self.after_optimizer is None:
            return None
        line = (
            f"{self.indent}scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau("
            f"{self.optimizer_name}, factor=0.1, patience={patience})\n"
        )
        where = Range(Position(self.after_optimizer, 1), Position(self.after_optimizer, 1))
        return Fix(
            "Add a ReduceLROnPlateau scheduler after the optimizer (then call "
            "scheduler.step(val_loss) after each validation)",
            (Edit(where, line),),
            applicability="unsafe",
        )


def find_script(log: Path, config: Config) -> Path | None:
    configured = config.logs.get("script") if isinstance(config.logs, dict) else None
    if isinstance(configured, str):
        path = (config.root / configured).resolve()
        return path if path.is_file() else None
    hints = {log.name.encode()}
    if log.name.startswith("events.out.tfevents"):
        hints = {log.parent.name.encode(), b"SummaryWriter"}
    for directory in search_dirs(log, config.root):
        candidates: list[Path] = []
        named: list[Path] = []
        try:
            scripts = sorted(p for p in directory.iterdir() if p.suffix == ".py" and p.is_file())
        except OSError:
            continue
        for script in scripts:
            try:
                data = reading.read_bytes(
                    script, what="script", limit=reading.LIMITS["script"], roots=[config.root]
                )
            except reading.Unreadable:
                continue
            if not _TORCH.search(data) or b"optim" not in data:
                continue
            candidates.append(script)
            if any(hint in data for hint in hints):
                named.append(script)
        if len(named) == 1:
            return named[0].resolve()
        if len(named) > 1:
            return None
        if len(candidates) == 1:
            return candidates[0].resolve()
    return None


def anchors(log: Path, log_display: str, config: Config) -> ScriptAnchors | None:
    script = find_script(log, config)
    if script is None:
        return None
    ctx = script_context(script)
    if ctx is None:
        return None
    loops = ctx.loops
    smap = SourceMap(script, display_for(script, log_display), text=ctx.text)
    name: str | None = None
    after: int | None = None
    indent = ""
    if len(loops.optimizers) == 1:
        call = loops.optimizers[0].call
        smap.ranges[OPTIMIZER] = ctx.range_of(call)
        statement = _statement(ctx.parent(call))
        if statement is not None and len(statement.targets) == 1:
            target = statement.targets[0]
            if isinstance(target, ast.Name):
                name = target.id
                indent = ctx.line_indent(statement.lineno)
                after = (statement.end_lineno or statement.lineno) + 1
    for loop in loops.training_loops:
        epoch_loop = loop.epoch_loop
        if epoch_loop is not None:
            head = epoch_loop.test if isinstance(epoch_loop, ast.While) else epoch_loop.iter
            smap.ranges.setdefault(EPOCH_LOOP, ctx.range_of(head))
    smap.ranges.setdefault(EPOCH_LOOP, smap.ranges.get(OPTIMIZER, Range.of(1, 1, 1, 1)))
    has_decay = bool(loops.schedulers) or loops.changes_lr_by_hand
    return ScriptAnchors(smap, has_decay, name, after, indent)


def _statement(node: ast.AST | None) -> ast.Assign | None:
    return node if isinstance(node, ast.Assign) else None
