"""The base of NP1xx rules: a check over one parsed script."""

from __future__ import annotations

import ast
from collections.abc import Iterable

from nnprobe.core.finding import Confidence, Evidence, Finding, Fix, Severity
from nnprobe.core.rule import Rule
from nnprobe.inspectors.script.context import ScriptContext


class StaticRule(Rule):
    evidence = Evidence.SOURCE

    def check(self, ctx: ScriptContext) -> Iterable[Finding]:
        raise NotImplementedError

    def report(
        self,
        ctx: ScriptContext,
        node: ast.AST,
        *,
        end: ast.AST | None = None,
        message: str | None = None,
        severity: Severity | None = None,
        confidence: Confidence | None = None,
        fix: Fix | None = None,
        **params: object,
    ) -> Finding:
        """A finding on the source range of `node` (through `end` when given)."""
        return self.finding(
            ctx.path,
            ctx.range_of(node, end),
            message=message,
            severity=severity,
            confidence=confidence,
            fix=fix,
            params=params,
        )
