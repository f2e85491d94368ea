"""Module paths back to the source lines that create them, so runtime findings land in the script.

A probe speaks of `features.3` or `fc1`; the user reads `self.fc1 = nn.Linear(64, 32)`. The
training script's ModelDef (from the static analysis) lists every submodule with its module path
and constructor call, which is all the mapping needs: no import, no torch.

Each runtime finding on a checkpoint (NP2xx/NP3xx/NP4xx with a `module`) gets a copy on the
script: same code and severity, `path` the script's display path, `range` the constructor call,
the message prefixed with the checkpoint's name so several checkpoints on one line stay apart.
Training-log findings (NP5xx) name no module but an anchor (`data["anchor"]`: "optimizer",
"epoch-loop"), which the log inspector puts in `ranges` beside the module paths; a fix meant
for the script travels in `data["script_fix"]`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nnprobe.core.finding import Evidence, Finding, Fix, Range

if TYPE_CHECKING:
    from nnprobe.inspectors.script.context import ScriptContext
    from nnprobe.inspectors.script.models import ModelDef

RUNTIME_EVIDENCE = frozenset(
    {Evidence.WEIGHTS, Evidence.ACTIVATIONS, Evidence.GRADIENTS, Evidence.LOGS}
)


@dataclass
class SourceMap:
    script: Path
    display: str  # the script as the report names it
    ranges: dict[str, Range] = field(default_factory=dict)  # module path -> constructor call
    activations: dict[str, str] = field(default_factory=dict)  # layer path -> activation after it
    text: str = ""
    prefix: str = ""  # the wrapper prefix the loader stripped from the weights' names ("model.")

    @classmethod
    def build(cls, ctx: ScriptContext, model: ModelDef, script: Path, display: str) -> SourceMap:
        smap = cls(script, display, text=ctx.text)
        for op in model.ops:
            if op.path is None or op.call is None:
                continue
            smap.ranges.setdefault(op.path, ctx.range_of(op.call))
            if op.is_weight_layer:
                after = model.activation_after(op)
                if after is not None:
                    smap.activations[op.path] = after.name
        for ops in model.submodules.values():
            for op in ops:
                if op.path is not None and op.call is not None:
                    smap.ranges.setdefault(op.path, ctx.range_of(op.call))
        return smap

    def range_for(self, module: str | None) -> Range | None:
        """The constructor of `module`, or of the nearest enclosing module the script names."""
        if not module:
            return None
        found = self._range_for(module)
        if found is None and self.prefix:
            found = self._range_for(self.prefix + module)
        return found

    def _range_for(self, module: str) -> Range | None:
        path = module.replace("/", ".").replace(":", ".").strip(".")
        while path:
            if path in self.ranges:
                return self.ranges[path]
            if "." not in path:
                return None
            path = path.rsplit(".", 1)[0]
        return None

    def copies(self, findings: Iterable[Finding], checkpoint_display: str) -> list[Finding]:
        name = Path(checkpoint_display).name
        out = []
        for finding in findings:
            if finding.evidence not in RUNTIME_EVIDENCE:
                continue
            # A functional activation at the top level has no module: it lands on the weight
            # layer that feeds it.
            layer = finding.data.get("layer")
            anchor = finding.data.get("anchor")
            where = (
                self.range_for(finding.module)
                or self.range_for(layer if isinstance(layer, str) else None)
                or (self.ranges.get(anchor) if isinstance(anchor, str) else None)
            )
            if where is None:
                continue
            script_fix = finding.data.get("script_fix")
            copy = finding.with_(
                path=self.display,
                range=where,
                message=f"{name}: {finding.message}",
                fix=script_fix if isinstance(script_fix, Fix) else None,
                data={**finding.data, "checkpoint": checkpoint_display},
            )
            out.append(copy)
        return out


def display_for(script: Path, checkpoint_display: str) -> str:
    """The script's path written the way the checkpoint's was: absolute if that was absolute,
    else relative to the working directory (how a directory walk names it)."""
    if os.path.isabs(checkpoint_display):
        return script.resolve().as_posix()
    try:
        rel = os.path.relpath(script.resolve())
    except ValueError:
        return script.resolve().as_posix()
    return Path(rel).as_posix()
