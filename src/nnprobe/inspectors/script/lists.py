"""Lists of modules that scripts build step by step, read without running the script.

Real networks are rarely one `nn.Sequential(...)` literal: a depth-parametrised MLP collects its
layers in a loop (`for _ in range(depth): layers += [nn.Linear(h, h), nn.ReLU()]`) and hands them
to `nn.Sequential(*layers)`, or a module fills `nn.ModuleList([...for _ in range(n)])`. When every
step of that construction is static (straight-line appends, `for` loops over a static range or a
static list, no branches) the list is unrolled into the expressions it holds, in order; anything
else gives None and the model that uses the list is marked incomplete.

Function parameters are read at their call sites: `make_mlp(depth=3)` means depth is 3 there, not
the default of the `def`, and differing call sites make the value unknown.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from nnprobe.inspectors.script.walk import children, walk

if TYPE_CHECKING:
    from nnprobe.inspectors.script.context import ScriptContext

# An unrolled list longer than this is not a network anyone writes by hand; give up.
MAX_ITEMS = 1024
_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Div: operator.truediv,
}
_MUTATORS = frozenset({"append", "extend", "add_module", "insert", "pop", "remove", "clear"})


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def range_length(bounds: Sequence[object]) -> int | None:
    """`len(range(*bounds))` for one to three static ints, else None. Computed from the bounds,
    because len() raises OverflowError past sys.maxsize and a script may say range(2**64)."""
    ints = [b for b in bounds if isinstance(b, int) and not isinstance(b, bool)]
    if len(ints) != len(bounds) or not 1 <= len(ints) <= 3 or ints[2:] == [0]:
        return None
    span = range(*ints)
    if span.step > 0:
        return max(0, (span.stop - span.start + span.step - 1) // span.step)
    return max(0, (span.start - span.stop - span.step - 1) // -span.step)


def static_sequence(ctx: ScriptContext, expr: ast.expr) -> list[Any] | None:
    """The items a `for` loop over expr visits, when they are statically known: `range(...)`,
    a constant list or tuple, slices of one, and `zip`/`enumerate` over those."""
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and not expr.keywords:
        func = expr.func.id
        if func == "range" and 1 <= len(expr.args) <= 3:
            bounds = [ctx.value(a) for a in expr.args]
            length = range_length(bounds)
            if length is None or length > MAX_ITEMS:
                return None
            return list(range(*bounds))
        if func in ("zip", "enumerate", "reversed", "list", "tuple") and expr.args:
            parts = [static_sequence(ctx, a) for a in expr.args]
            if any(p is None for p in parts):
                return None
            sequences = [p for p in parts if p is not None]
            if func == "zip":
                return [list(t) for t in zip(*sequences, strict=False)]
            if len(sequences) != 1:
                return None
            if func == "enumerate":
                return [[i, v] for i, v in enumerate(sequences[0])]
            return list(reversed(sequences[0])) if func == "reversed" else sequences[0]
        return None
    if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Slice):
        base = static_sequence(ctx, expr.value)
        bounds = [
            ctx.value(b) if b is not None else None
            for b in (expr.slice.lower, expr.slice.upper, expr.slice.step)
        ]
        if base is None or not all(b is None or isinstance(b, int) for b in bounds):
            return None
        return base[slice(*bounds)]
    value = ctx.value(expr)
    if isinstance(value, list | tuple) and len(value) <= MAX_ITEMS:
        return list(value)
    return None


def list_items(ctx: ScriptContext, expr: ast.expr) -> list[ast.expr] | None:
    """The element expressions a list-valued expression holds, in order, or None when unknown.

    Understood: list/tuple literals (with starred parts), `a + b`, comprehensions with one `for`
    over a static sequence and no `if`, and a local name bound once to one of those and then grown
    in straight-line code or static loops (`append`, `extend`, `+=`).
    """
    return _Unroller(ctx).items(expr, 0)


def grown_items(
    ctx: ScriptContext, start: ast.stmt, target: ast.expr, initial: list[ast.expr]
) -> list[ast.expr] | None:
    """The elements of the container bound at `start` (to `target`: a name or `self.attr`) after
    the statements that follow it in the same block have grown it; None when some statement
    touches the container in a way that cannot be followed. Statements after the block (in
    other methods, say) are not seen."""
    unroller = _Unroller(ctx)
    key = _key(target)
    if key is None:
        return None
    following = _following(ctx, start)
    if following is None:
        return None
    items = list(initial)
    for stmt in following:
        grown = unroller.statement(stmt, key, 0)
        if grown is None:
            return None
        items.extend(grown)
        if len(items) > MAX_ITEMS:
            return None
    return items


def mutates(ctx: ScriptContext, start: ast.stmt, target: ast.expr) -> bool:
    """Whether a statement after `start` in its block refers to the container bound there."""
    key = _key(target)
    following = _following(ctx, start)
    if key is None or following is None:
        return False
    return any(_refers(stmt, key) for stmt in following)


def may_grow(ctx: ScriptContext, name: ast.Name) -> bool:
    """Whether the list a name is bound to is appended to, extended or `+=`-ed anywhere in the
    scope that binds it (then its literal value is not the whole story)."""
    bindings = ctx.bindings(name.id, name)
    if not bindings:
        return False
    scope = bindings[0].scope
    for node in walk(scope):
        if isinstance(node, ast.AugAssign) and _matches(node.target, name.id):
            return True
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _MUTATORS
            and _matches(node.func.value, name.id)
        ):
            return True
    return False


def _key(expr: ast.expr) -> str | None:
    if isinstance(expr, ast.Name):
        return expr.id
    if (
        isinstance(expr, ast.Attribute)
        and isinstance(expr.value, ast.Name)
        and expr.value.id == "self"
    ):
        return "self." + expr.attr
    return None


def _matches(expr: ast.AST, key: str) -> bool:
    return isinstance(expr, ast.Name | ast.Attribute) and _key(expr) == key


def _refers(node: ast.AST, key: str) -> bool:
    return any(_matches(n, key) for n in walk(node))


def _block(parent: ast.AST, stmt: ast.stmt) -> list[ast.stmt] | None:
    for name in ("body", "orelse", "finalbody"):
        block = getattr(parent, name, None)
        if isinstance(block, list) and stmt in block:
            return block
    return None


def _following(ctx: ScriptContext, stmt: ast.stmt) -> list[ast.stmt] | None:
    parent = ctx.parent(stmt)
    block = _block(parent, stmt) if parent is not None else None
    if block is None:
        return None
    return block[block.index(stmt) + 1 :]


class _Unroller:
    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx

    def items(self, expr: ast.expr, depth: int) -> list[ast.expr] | None:
        if depth > 8:
            return None
        if isinstance(expr, ast.List | ast.Tuple):
            result: list[ast.expr] = []
            for element in expr.elts:
                if isinstance(element, ast.Starred):
                    inner = self.items(element.value, depth + 1)
                    if inner is None:
                        return None
                    result.extend(inner)
                else:
                    result.append(element)
            return result
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left = self.items(expr.left, depth + 1)
            right = self.items(expr.right, depth + 1)
            return left + right if left is not None and right is not None else None
        if isinstance(expr, ast.ListComp | ast.GeneratorExp):
            return self._comprehension(expr)
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name):
            if expr.func.id in ("list", "tuple") and len(expr.args) == 1 and not expr.keywords:
                return self.items(expr.args[0], depth + 1)
            if expr.func.id == "list" and not expr.args and not expr.keywords:
                return []
            return None
        if isinstance(expr, ast.Name):
            return self._name(expr, depth)
        return None

    def _comprehension(self, expr: ast.ListComp | ast.GeneratorExp) -> list[ast.expr] | None:
        if len(expr.generators) != 1:
            return None
        generator = expr.generators[0]
        if generator.ifs or generator.is_async:
            return None
        sequence = static_sequence(self.ctx, generator.iter)
        if sequence is None:
            return None
        return [expr.elt] * len(sequence)

    def _name(self, name: ast.Name, depth: int) -> list[ast.expr] | None:
        """A local list bound once and grown in straight-line code before `name` is used."""
        bindings = self.ctx.bindings(name.id, name)
        assigns = [b for b in bindings if b.kind == "assign"]
        if len(assigns) != 1 or assigns[0].value is None:
            return None
        if any(b.kind != "assign" and not isinstance(b.node, ast.AugAssign) for b in bindings):
            return None
        start = assigns[0].node
        if not isinstance(start, ast.Assign | ast.AnnAssign):
            return None
        initial = self.items(assigns[0].value, depth + 1)
        if initial is None:
            return None
        if not may_grow(self.ctx, name):
            return initial
        following = _following(self.ctx, start)
        if following is None:
            return None
        use = next((s for s in following if _contains(s, name)), None)
        if use is None:
            return None
        items = list(initial)
        for stmt in following[: following.index(use)]:
            grown = self.statement(stmt, name.id, depth)
            if grown is None:
                return None
            items.extend(grown)
            if len(items) > MAX_ITEMS:
                return None
        return items

    def statement(self, stmt: ast.stmt, key: str, depth: int) -> list[ast.expr] | None:
        """What one statement adds to the container named `key` ([] when it leaves it alone)."""
        if not _refers(stmt, key):
            return []
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            func = call.func
            if (
                isinstance(func, ast.Attribute)
                and _matches(func.value, key)
                and func.attr in _MUTATORS
                and not call.keywords
                and not any(_refers(a, key) for a in call.args)
            ):
                if func.attr == "append" and len(call.args) == 1:
                    return [call.args[0]]
                if func.attr == "extend" and len(call.args) == 1:
                    return self.items(call.args[0], depth + 1)
                if func.attr == "add_module" and len(call.args) == 2:
                    return [call.args[1]]
                return None
        if (
            isinstance(stmt, ast.AugAssign)
            and isinstance(stmt.op, ast.Add)
            and _matches(stmt.target, key)
            and not _refers(stmt.value, key)
        ):
            return self.items(stmt.value, depth + 1)
        if isinstance(stmt, ast.For) and not stmt.orelse and not _refers(stmt.iter, key):
            sequence = static_sequence(self.ctx, stmt.iter)
            if sequence is None:
                return None
            once: list[ast.expr] = []
            for inner in stmt.body:
                grown = self.statement(inner, key, depth)
                if grown is None:
                    return None
                once.extend(grown)
            if len(once) * len(sequence) > MAX_ITEMS:
                return None
            return once * len(sequence)
        return [] if _only_reads(stmt, key) else None


_READERS = frozenset({"len", "enumerate", "zip", "reversed", "iter", "isinstance", "print"})


def _only_reads(stmt: ast.stmt, key: str) -> bool:
    """Whether every use of the container in stmt leaves it as it is: iterating, indexing,
    `len(...)`, an attribute other than a mutating method (`for layer in self.layers: ...`)."""
    parents = {child: node for node in walk(stmt) for child in children(node)}
    for node in walk(stmt):
        if not _matches(node, key):
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.For | ast.comprehension) and node is parent.iter:
            continue
        if (
            isinstance(parent, ast.Subscript)
            and node is parent.value
            and isinstance(parent.ctx, ast.Load)
        ):
            continue
        if (
            isinstance(parent, ast.Attribute)
            and node is parent.value
            and parent.attr not in _MUTATORS
            and parent.attr not in ("__iadd__", "__setitem__", "__delitem__")
        ):
            continue
        if (
            isinstance(parent, ast.Call)
            and isinstance(parent.func, ast.Name)
            and parent.func.id in _READERS
            and node in parent.args
        ):
            continue
        return False
    return True


def _contains(stmt: ast.AST, node: ast.AST) -> bool:
    return any(n is node for n in walk(stmt))
