"""Walking a syntax tree the way ast.walk does, at a fraction of its cost.

Every static check walks parts of the tree (a class, a forward, a loop) looking for calls,
assignments or returns. ast.walk looks into every field of every node through two generators per
node, also into names, flags, Load/Store contexts and operators, which no check asks for as nodes;
`walk` skips those fields, and was half ast.walk's time on the benchmark's scripts.
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterator

# Fields that never hold a node with fields of its own (identifiers, flags, Load/Store, operators):
# looking into them on every node of every walk is most of what a walk costs.
_LEAF_FIELDS = frozenset(
    {
        "ctx",
        "op",
        "ops",
        "id",
        "attr",
        "arg",
        "name",
        "asname",
        "module",
        "level",
        "kind",
        "conversion",
        "is_async",
        "simple",
        "type_comment",
    }
)
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}
# Statements without fields: ScriptContext does not index them (nothing asks for them by type).
BARE_STATEMENTS = frozenset({ast.Pass, ast.Break, ast.Continue})


def child_fields(kind: type[ast.AST]) -> tuple[str, ...]:
    """The fields of a node type that may hold child nodes (none for Name, Constant...)."""
    fields = _CHILD_FIELDS.get(kind)
    if fields is None:
        fields = _CHILD_FIELDS[kind] = tuple(f for f in kind._fields if f not in _LEAF_FIELDS)
    return fields


def children(node: ast.AST) -> list[ast.AST]:
    """ast.iter_child_nodes(node) as a list, less the Load/Store contexts and operators."""
    fields = _CHILD_FIELDS.get(type(node)) or child_fields(type(node))
    found: list[ast.AST] = []
    for name in fields:
        value = getattr(node, name, None)
        if type(value) is list:
            found.extend(item for item in value if isinstance(item, ast.AST))
        elif isinstance(value, ast.AST):
            found.append(value)
    return found


def walk(node: ast.AST) -> Iterator[ast.AST]:
    """ast.walk's nodes in ast.walk's order (breadth first), less the contexts and operators."""
    queue = deque([node])
    while queue:
        current = queue.popleft()
        queue.extend(children(current))
        yield current


# The fields that hold blocks of statements (statements sit nowhere else).
_BLOCK_FIELDS = ("body", "handlers", "orelse", "finalbody", "cases")


def walk_statements(node: ast.AST) -> Iterator[ast.AST]:
    """walk's statements (and except handlers, match cases) in walk's order, without going into
    expressions: what a search for assignments or returns needs, at a fraction of the nodes."""
    queue = deque([node])
    while queue:
        current = queue.popleft()
        for name in _BLOCK_FIELDS:
            block = getattr(current, name, None)
            if type(block) is list:
                queue.extend(block)
        yield current
