"""One parsed training script and the facts every static rule asks about it.

The file is parsed once; imports, scopes, assignments and calls are indexed in a single walk, and
the heavier views (models, training loops) are built on first use and shared by all rules.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from nnprobe.core.finding import Edit, Position, Range
from nnprobe.core.lines import split_lines
from nnprobe.inspectors.script.values import UNKNOWN, Evaluator
from nnprobe.inspectors.script.walk import (
    BARE_STATEMENTS,
    child_fields,
    walk_statements,
)

if TYPE_CHECKING:
    from nnprobe.inspectors.script.loops import LoopIndex
    from nnprobe.inspectors.script.models import ModelIndex

T = TypeVar("T")
Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef
FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef

TORCH_ROOTS = ("torch", "lightning", "pytorch_lightning")


@dataclass
class Binding:
    """One place a name gets a value in a scope."""

    name: str
    node: ast.AST  # the statement or target that binds it
    value: ast.expr | None  # the assigned expression when it is a plain assignment
    kind: str  # "assign", "param", "loop", "import", "def", "class", "with", "other"
    scope: Scope


@dataclass
class ScopeInfo:
    node: Scope
    parent: ScopeInfo | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)

    def add(self, binding: Binding) -> None:
        self.bindings.setdefault(binding.name, []).append(binding)


class ScriptContext:
    def __init__(self, path: str, text: str, tree: ast.Module) -> None:
        self.path = path
        self.text = text
        self.tree = tree
        self.lines = split_lines(text)
        self.parents: dict[ast.AST, ast.AST] = {}
        self.imports: dict[str, str] = {}  # local name -> qualified name
        self.calls: list[ast.Call] = []
        self.functions: dict[str, list[FunctionNode]] = {}
        self.classes: dict[str, ast.ClassDef] = {}
        self.scopes: dict[ast.AST, ScopeInfo] = {}
        self._qualnames: dict[ast.AST, str | None] = {}
        self._scope_at: dict[ast.AST, ScopeInfo] = {}
        self._by_type: dict[type[ast.AST], list[ast.AST]] = {}
        self._shared: dict[Callable[[ScriptContext], object], object] = {}
        self._index()
        self.evaluator = Evaluator(self)

    def release(self) -> None:
        """Let go of the tree and of every index built on it; the context is unusable after.
        Those indexes point back at the context (the evaluator, the shared views), so without
        this only a garbage collection frees them, and it walks every node of the tree first."""
        self.__dict__.clear()

    # ------------------------------------------------------------------ indexing

    def _index(self) -> None:
        """One iterative pre-order walk (source order; no recursion limit on deep expressions)."""
        module_scope = ScopeInfo(self.tree, None)
        self.scopes[self.tree] = module_scope
        parents, by_type, calls = self.parents, self._by_type, self.calls
        handlers = {
            ast.FunctionDef: self._enter_function,
            ast.AsyncFunctionDef: self._enter_function,
            ast.Lambda: self._enter_function,
            ast.ClassDef: self._enter_class,
            ast.Import: self._bind_import,
            ast.ImportFrom: self._bind_import,
            ast.Assign: self._bind_statement,
            ast.AnnAssign: self._bind_statement,
            ast.AugAssign: self._bind_statement,
            ast.For: self._bind_statement,
            ast.AsyncFor: self._bind_statement,
            ast.comprehension: self._bind_statement,
            ast.withitem: self._bind_statement,
            ast.NamedExpr: self._bind_statement,
        }
        stack: list[tuple[ast.AST, ScopeInfo]] = [(self.tree, module_scope)]
        node_type = ast.AST
        while stack:
            node, scope = stack.pop()
            pending = []
            # walk.children(node), inlined: this loop runs once per node of the file.
            found: list[ast.AST] = []
            for name in child_fields(type(node)):
                value = getattr(node, name, None)
                if type(value) is list:
                    found.extend(value)
                elif isinstance(value, node_type):
                    found.append(value)
            for child in found:
                kind = type(child)
                if kind in BARE_STATEMENTS or not isinstance(child, node_type):
                    continue
                parents[child] = node
                bucket = by_type.get(kind)
                if bucket is None:
                    bucket = by_type[kind] = []
                bucket.append(child)
                if kind is ast.Call:
                    calls.append(child)  # type: ignore[arg-type]
                handler = handlers.get(kind)
                child_scope = handler(child, scope) if handler is not None else None
                if child_fields(kind):  # names and constants have nothing to visit
                    pending.append((child, child_scope or scope))
            stack.extend(reversed(pending))

    def _enter_function(self, fn: ast.AST, scope: ScopeInfo) -> ScopeInfo:
        assert isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        if not isinstance(fn, ast.Lambda):
            scope.add(Binding(fn.name, fn, None, "def", scope.node))
            self.functions.setdefault(fn.name, []).append(fn)
        inner = ScopeInfo(fn, scope)
        self.scopes[fn] = inner
        self._bind_params(fn, inner, scope)
        return inner

    def _enter_class(self, cls: ast.AST, scope: ScopeInfo) -> ScopeInfo:
        assert isinstance(cls, ast.ClassDef)
        scope.add(Binding(cls.name, cls, None, "class", scope.node))
        self.classes.setdefault(cls.name, cls)
        inner = ScopeInfo(cls, scope)
        self.scopes[cls] = inner
        return inner

    def _bind_params(
        self, fn: FunctionNode | ast.Lambda, scope: ScopeInfo, outer: ScopeInfo
    ) -> None:
        args = fn.args
        positional = [*args.posonlyargs, *args.args]
        defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
        defaults += list(args.defaults)
        pairs = list(zip(positional, defaults, strict=True))
        pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
        for arg, default in pairs:
            scope.add(Binding(arg.arg, arg, default, "param", fn))
        for extra in (args.vararg, args.kwarg):
            if extra is not None:
                scope.add(Binding(extra.arg, extra, None, "other", fn))

    def _bind_import(self, node: ast.AST, scope: ScopeInfo) -> None:
        assert isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names:
            if isinstance(node, ast.Import):
                if alias.asname:
                    local, qual = alias.asname, alias.name
                else:
                    local = qual = alias.name.split(".")[0]
            else:
                if node.level or node.module is None:
                    continue
                local, qual = alias.asname or alias.name, f"{node.module}.{alias.name}"
            if scope.node is self.tree or local not in self.imports:
                self.imports[local] = qual
            scope.add(Binding(local, node, None, "import", scope.node))

    def _bind_statement(self, node: ast.AST, scope: ScopeInfo) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind_target(target, node, node.value, scope)
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self._bind_target(node.target, node, node.value, scope)
        elif isinstance(node, ast.AugAssign):
            self._bind_target(node.target, node, None, scope, kind="other")
        elif isinstance(node, ast.For | ast.AsyncFor | ast.comprehension):
            self._bind_target(node.target, node, None, scope, kind="loop")
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            self._bind_target(node.optional_vars, node, None, scope, kind="with")
        elif isinstance(node, ast.NamedExpr):
            self._bind_target(node.target, node, node.value, scope)

    def _bind_target(
        self,
        target: ast.AST,
        stmt: ast.AST,
        value: ast.expr | None,
        scope: ScopeInfo,
        kind: str = "assign",
    ) -> None:
        if isinstance(target, ast.Name):
            scope.add(Binding(target.id, stmt, value, kind, scope.node))
        elif isinstance(target, ast.Tuple | ast.List):
            values: list[ast.expr | None]
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                values = list(value.elts)
            else:
                values = [None] * len(target.elts)
            for element, element_value in zip(target.elts, values, strict=True):
                self._bind_target(
                    element, stmt, element_value, scope, kind if element_value else "other"
                )
        elif isinstance(target, ast.Starred):
            self._bind_target(target.value, stmt, None, scope, "other")

    # ------------------------------------------------------------------ names and scopes

    def parent(self, node: ast.AST) -> ast.AST | None:
        return self.parents.get(node)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        current = self.parents.get(node)
        while current is not None:
            yield current
            current = self.parents.get(current)

    def scope_of(self, node: ast.AST) -> ScopeInfo:
        """The scope a name used at `node` is looked up in (class bodies are skipped)."""
        # Remembered for every ancestor passed on the way up (the answer is the same from
        # them): the rules ask this of most names, and the next name nearby stops after a step.
        known = self._scope_at
        passed: list[ast.AST] = []
        current = self.parents.get(node)
        scope: ScopeInfo | None = None
        while current is not None:
            scope = known.get(current)
            if scope is not None:
                break
            if isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                scope = self.scopes[current]
                break
            passed.append(current)
            current = self.parents.get(current)
        if scope is None:
            scope = self.scopes[self.tree]
        for ancestor in passed:
            known[ancestor] = scope
        return scope

    def enclosing_function(self, node: ast.AST) -> FunctionNode | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, ast.FunctionDef | ast.AsyncFunctionDef):
                return ancestor
        return None

    def enclosing_class(self, node: ast.AST) -> ast.ClassDef | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, ast.ClassDef):
                return ancestor
        return None

    def bindings(self, name: str, at: ast.AST) -> list[Binding]:
        """Bindings of `name` visible at `at`: the innermost function scope that binds it, else the
        module. Class bodies are not searched, as in Python."""
        scope: ScopeInfo | None = self.scope_of(at)
        while scope is not None:
            if not isinstance(scope.node, ast.ClassDef) and name in scope.bindings:
                return scope.bindings[name]
            scope = scope.parent
        return []

    def definition(self, name: ast.Name) -> ast.expr | None:
        """The single expression assigned to a name, when there is exactly one plain assignment
        (or one parameter default); None when it is rebound, looped over, or unknown."""
        bindings = self.bindings(name.id, name)
        if len(bindings) != 1:
            # Several assignments before the use: take the last one before it in the same scope
            # only when none of them sits in a loop or branch (straight-line code).
            # `x = nn.Sequential(x, ...)`: the x on the right is the previous binding.
            before = [
                b for b in bindings if _line(b.node) <= name.lineno and not self._binds_at(b, name)
            ]
            if not before or not all(b.kind == "assign" for b in bindings):
                return None
            last = before[-1]
            if any(self._in_branch(b.node, last.scope) for b in bindings):
                return None
            return last.value
        binding = bindings[0]
        if binding.kind in ("assign", "param") and not self._binds_at(binding, name):
            return binding.value
        return None

    def _binds_at(self, binding: Binding, name: ast.Name) -> bool:
        """Whether `name` is read inside the statement that makes this binding."""
        return binding.kind == "assign" and any(a is binding.node for a in self.ancestors(name))

    def _in_branch(self, node: ast.AST, scope: ast.AST) -> bool:
        for ancestor in self.ancestors(node):
            if ancestor is scope:
                return False
            if isinstance(ancestor, ast.If | ast.For | ast.While | ast.Try | ast.With):
                return True
        return False

    def resolve(self, expr: ast.expr, depth: int = 8) -> ast.expr:
        """Follow a Name to the expression it was assigned from, as far as that is unambiguous."""
        while depth and isinstance(expr, ast.Name):
            value = self.definition(expr)
            if value is None:
                break
            expr, depth = value, depth - 1
        return expr

    def qualname(self, expr: ast.AST) -> str | None:
        """The dotted name an expression refers to through imports: `nn.Linear` -> torch.nn.Linear.

        Names that were not imported resolve to themselves (a local class `Net` -> "Net"); anything
        that is not a plain dotted name gives None.
        """
        if expr in self._qualnames:
            return self._qualnames[expr]
        result: str | None
        if isinstance(expr, ast.Name):
            result = self.imports.get(expr.id, expr.id)
        elif isinstance(expr, ast.Attribute):
            base = self.qualname(expr.value)
            result = f"{base}.{expr.attr}" if base is not None else None
        else:
            result = None
        if result is not None:
            result = _canonical(result)
        self._qualnames[expr] = result
        return result

    def returned(self, call: ast.Call) -> ast.expr | None:
        """What a call to a local function returns, when the function has one return value."""
        if not isinstance(call.func, ast.Name):
            return None
        defs = self.functions.get(call.func.id, [])
        if len(defs) != 1 or self.enclosing_class(defs[0]) is not None:
            return None
        returns = [
            node.value
            for node in walk_statements(defs[0])
            if isinstance(node, ast.Return)
            and node.value is not None
            and self.enclosing_function(node) is defs[0]
        ]
        return returns[0] if len(returns) == 1 else None

    @cached_property
    def _calls_by_name(self) -> dict[str, list[ast.Call]]:
        index: dict[str, list[ast.Call]] = {}
        for call in self.calls:
            if isinstance(call.func, ast.Name):
                index.setdefault(call.func.id, []).append(call)
        return index

    def calls_of(self, name: str) -> list[ast.Call]:
        """Calls of a plain name, `name(...)`, wherever they are."""
        return self._calls_by_name.get(name, [])

    def call_sites(self, fn: FunctionNode) -> list[ast.Call] | None:
        """Calls of a function (for `__init__`, constructions of its class) in this file; None
        when its callers cannot be told apart (another method, a name defined twice)."""
        owner = self.parent(fn)
        if isinstance(owner, ast.ClassDef):
            if fn.name != "__init__" or self.classes.get(owner.name) is not owner:
                return None
            target = owner.name
        else:
            if len(self.functions.get(fn.name, [])) != 1:
                return None
            target = fn.name
        return list(self._calls_by_name.get(target, []))

    def call_name(self, call: ast.Call) -> str | None:
        known = self._qualnames  # qualname's memo, read here first: rules ask this of every call
        return known[call.func] if call.func in known else self.qualname(call.func)

    def nodes(self, *types: type[ast.AST], ordered: bool = True) -> list[ast.AST]:
        """Every node of the given exact AST types (indexed in the one walk, so rules need not
        walk the whole tree again); in source order unless `ordered` is False."""
        found = [n for t in types for n in self._by_type.get(t, ())]
        if ordered and len(types) > 1:
            found.sort(key=_position)
        return found

    def shared(self, factory: Callable[[ScriptContext], T]) -> T:
        """The one value per script that `factory` builds (a rule family's index or cache),
        so rules of one family share work without module-level caches."""
        try:
            return self._shared[factory]  # type: ignore[return-value]
        except KeyError:
            value = self._shared[factory] = factory(self)
            return value

    @cached_property
    def _calls_by_qualname(self) -> dict[str, list[ast.Call]]:
        index: dict[str, list[ast.Call]] = {}
        for call in self.calls:
            name = self.call_name(call)
            if name is not None:
                index.setdefault(name, []).append(call)
        return index

    def calls_to(self, *names: str) -> Iterator[tuple[ast.Call, str]]:
        """Calls whose callee resolves to one of `names` (exact qualified names), in order."""
        found = [(c, n) for n in set(names) for c in self._calls_by_qualname.get(n, ())]
        found.sort(key=lambda pair: _position(pair[0]))
        yield from found

    @cached_property
    def imports_torch(self) -> bool:
        return any(q.split(".")[0] in TORCH_ROOTS for q in self.imports.values())

    # ------------------------------------------------------------------ values

    def value(self, expr: ast.expr | None) -> Any:
        """The statically known value of expr, or UNKNOWN."""
        if expr is None:
            return UNKNOWN
        return self.evaluator.evaluate(expr)

    def number(self, expr: ast.expr | None) -> float | None:
        value = self.value(expr)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            return float(value)
        except OverflowError:  # an int past 1e308 (`lr = 10**400`) is as large as a float gets
            return math.inf if value > 0 else -math.inf

    # ------------------------------------------------------------------ arguments

    @staticmethod
    def argument(call: ast.Call, keyword: str, position: int | None = None) -> ast.expr | None:
        """The expression passed for a parameter, by keyword or by position."""
        for kw in call.keywords:
            if kw.arg == keyword:
                return kw.value
        if position is not None and position < len(call.args):
            arg = call.args[position]
            if not any(isinstance(a, ast.Starred) for a in call.args[: position + 1]):
                return arg
        return None

    @staticmethod
    def has_kwargs_splat(call: ast.Call) -> bool:
        return any(kw.arg is None for kw in call.keywords) or any(
            isinstance(a, ast.Starred) for a in call.args
        )

    # ------------------------------------------------------------------ positions and edits

    def _column(self, line: int, byte_offset: int) -> int:
        """1-based character column of a UTF-8 byte offset on a 1-based line."""
        if 1 <= line <= len(self.lines):
            text = self.lines[line - 1]
            if text.isascii():
                return byte_offset + 1
            return len(text.encode("utf-8")[:byte_offset].decode("utf-8", "replace")) + 1
        return byte_offset + 1

    def range_of(self, node: ast.AST, end: ast.AST | None = None) -> Range:
        last = end or node
        line = getattr(node, "lineno", 1)
        end_line = getattr(last, "end_lineno", None) or line
        start = Position(line, self._column(line, getattr(node, "col_offset", 0)))
        end_col = getattr(last, "end_col_offset", None)
        if end_col is None:
            end_pos = start
        else:
            end_pos = Position(end_line, self._column(end_line, end_col))
        return Range(start, end_pos)

    def source(self, node: ast.AST) -> str:
        """The exact source text of a node (ast.get_source_segment re-splits the file per call)."""
        line = getattr(node, "lineno", None)
        end_line = getattr(node, "end_lineno", None)
        col = getattr(node, "col_offset", None)
        end_col = getattr(node, "end_col_offset", None)
        if line is None or end_line is None or col is None or end_col is None:
            return ""
        if not (1 <= line <= end_line <= len(self.lines)):
            return ""
        first = self.lines[line - 1].encode("utf-8")
        if line == end_line:
            return str(first[col:end_col].decode("utf-8", "replace"))
        parts = [first[col:].decode("utf-8", "replace")]
        parts.extend(self.lines[line : end_line - 1])
        parts.append(self.lines[end_line - 1].encode("utf-8")[:end_col].decode("utf-8", "replace"))
        return "\n".join(parts)

    def replace(self, node: ast.AST, new_text: str) -> Edit:
        return Edit(self.range_of(node), new_text)

    def line_indent(self, line: int) -> str:
        text = self.lines[line - 1] if 1 <= line <= len(self.lines) else ""
        return text[: len(text) - len(text.lstrip())]

    # ------------------------------------------------------------------ shared views

    @cached_property
    def models(self) -> ModelIndex:
        from nnprobe.inspectors.script.models import ModelIndex

        return ModelIndex(self)

    @cached_property
    def loops(self) -> LoopIndex:
        from nnprobe.inspectors.script.loops import LoopIndex

        return LoopIndex(self)


def _position(node: ast.AST) -> tuple[int, int]:
    return getattr(node, "lineno", 0), getattr(node, "col_offset", 0)


def _line(node: ast.AST) -> int:
    return getattr(node, "lineno", 0)


def _canonical(name: str) -> str:
    """One torch object's spellings reduced to the public one (`torch.nn.modules.linear.Linear`)."""
    if name.startswith("torch.nn.modules."):
        return "torch.nn." + name.rsplit(".", 1)[-1]
    return name
