"""The fast walks in nnprobe.inspectors.script.walk give what ast.walk gives, in its order: the
rules replaced ast.walk with them, so any difference would change findings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nnprobe.inspectors.script.walk import children, walk, walk_statements

ROOT = Path(__file__).resolve().parents[1]
# Fixtures and examples (what the rules read), and stdlib modules with every statement kind.
STDLIB = Path(ast.__file__).parent
SOURCES = sorted((ROOT / "tests" / "fixtures").rglob("*.py")) + [
    STDLIB / name for name in ("ast.py", "dataclasses.py", "asyncio/tasks.py")
]
# Nodes ast.walk yields and `walk` leaves out on purpose: no rule asks for them as nodes.
SKIPPED = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)

MATCH = """
def f(command):
    match command:
        case [x, *rest] if x:
            y = 1
        case {"k": v}:
            return v
        case _:
            pass
    try:
        z = 2
    except* ValueError as e:
        w = 3
"""


def trees() -> list[ast.Module]:
    found = [ast.parse(MATCH)]
    for path in SOURCES:
        try:
            found.append(ast.parse(path.read_bytes()))
        except SyntaxError:  # fixtures of syntax errors
            continue
    return found


@pytest.mark.parametrize("tree", trees(), ids=lambda t: str(len(t.body)))
def test_walk_is_ast_walk_without_contexts_and_operators(tree: ast.Module) -> None:
    expected = [n for n in ast.walk(tree) if not isinstance(n, SKIPPED)]
    assert list(walk(tree)) == expected
    for node in expected[:200]:
        assert children(node) == [
            c for c in ast.iter_child_nodes(node) if not isinstance(c, SKIPPED)
        ]


@pytest.mark.parametrize("tree", trees(), ids=lambda t: str(len(t.body)))
def test_walk_statements_finds_every_statement_in_walk_order(tree: ast.Module) -> None:
    scopes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
    for scope in scopes:
        expected = [n for n in ast.walk(scope) if isinstance(n, ast.stmt)]
        assert [n for n in walk_statements(scope) if isinstance(n, ast.stmt)] == expected


def test_the_sources_cover_every_block_kind() -> None:
    kinds = {type(n) for tree in trees() for n in ast.walk(tree)}
    blocks = {ast.Try, ast.TryStar, ast.While, ast.For, ast.With, ast.If, ast.Match, ast.ClassDef}
    assert blocks <= kinds, blocks - kinds
