"""Static values: what a hyperparameter expression is when that can be known without running code.

Literals, constant arithmetic, names assigned once, function-parameter defaults, argparse defaults
(`parser.add_argument("--lr", default=0.3)` then `args.lr`) and dict configs (`cfg["lr"]`,
`cfg.get("lr", 0.1)`, `dict(lr=0.3)`). Anything else is UNKNOWN, and rules stay silent on it.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nnprobe.inspectors.script.context import Binding, ScriptContext


class _Unknown:
    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        return False


UNKNOWN: Any = _Unknown()

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_DEPTH = 12


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Evaluator:
    def __init__(self, ctx: ScriptContext) -> None:
        self.ctx = ctx
        self._argparse: dict[str, list[ast.Call]] | None = None
        self._parameters: dict[tuple[ast.AST, str], Any] = {}

    def evaluate(self, expr: ast.expr, depth: int = 0) -> Any:
        if depth > _MAX_DEPTH:
            return UNKNOWN
        try:
            return self._evaluate(expr, depth + 1)
        except (ArithmeticError, TypeError, ValueError, IndexError, KeyError, OverflowError):
            return UNKNOWN

    def _evaluate(self, expr: ast.expr, depth: int) -> Any:
        match expr:
            case ast.Constant(value=value):
                return value
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                value = self.evaluate(operand, depth)
                return -value if _number(value) else UNKNOWN
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                value = self.evaluate(operand, depth)
                return value if _number(value) else UNKNOWN
            case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINOPS:
                a, b = self.evaluate(left, depth), self.evaluate(right, depth)
                if _number(a) and _number(b):
                    if isinstance(op, ast.Pow) and abs(b) > 64:
                        return UNKNOWN
                    return _BINOPS[type(op)](a, b)
                return UNKNOWN
            case ast.Tuple(elts=elts) | ast.List(elts=elts):
                return [self.evaluate(e, depth) for e in elts]
            case ast.Dict(keys=keys, values=items):
                result: dict[Any, Any] = {}
                for key_expr, item in zip(keys, items, strict=True):
                    if key_expr is None:
                        return UNKNOWN  # **splat
                    k = self.evaluate(key_expr, depth)
                    if k is UNKNOWN:
                        return UNKNOWN
                    result[k] = self.evaluate(item, depth)
                return result
            case ast.Name():
                return self._name(expr, depth)
            case ast.Subscript(value=container, slice=index):
                base = self.evaluate(container, depth)
                key = self.evaluate(index, depth)
                if isinstance(base, dict) and key in base:
                    return base[key]
                if isinstance(base, list) and isinstance(key, int):
                    return base[key]
                return UNKNOWN
            case ast.Attribute(value=base_expr, attr=attr):
                return self._attribute(base_expr, attr, depth)
            case ast.Call():
                return self._call(expr, depth)
        return UNKNOWN

    def _name(self, name: ast.Name, depth: int) -> Any:
        if name.id in ("True", "False", "None"):
            return {"True": True, "False": False, "None": None}[name.id]
        bindings = self.ctx.bindings(name.id, name)
        if len(bindings) == 1 and bindings[0].kind == "param":
            return self._parameter(bindings[0], name.id, depth)
        value = self.ctx.definition(name)
        if value is None:
            return UNKNOWN
        return self.evaluate(value, depth)

    def _parameter(self, binding: Binding, param: str, depth: int) -> Any:
        """A parameter's value as the file's callers pass it: every call site must agree (one
        that leaves it out contributes the default); with no call site, the default."""
        fn = binding.scope
        key = (fn, param)
        if key in self._parameters:
            return self._parameters[key]
        self._parameters[key] = UNKNOWN  # recursion guard
        default = self.evaluate(binding.value, depth) if binding.value is not None else UNKNOWN
        result = default
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            result = UNKNOWN if binding.value is None else default
        else:
            sites = self.ctx.call_sites(fn)
            if sites is None:
                result = UNKNOWN
            elif sites:
                positional = [a.arg for a in (*fn.args.posonlyargs, *fn.args.args)]
                offset = 1 if isinstance(self.ctx.parent(fn), ast.ClassDef) else 0
                index = positional.index(param) - offset if param in positional else -1
                values = []
                for call in sites:
                    if self.ctx.has_kwargs_splat(call):
                        values.append(UNKNOWN)
                        break
                    passed = self.ctx.argument(call, param, index if index >= 0 else None)
                    values.append(default if passed is None else self.evaluate(passed, depth))
                first = values[0]
                if first is UNKNOWN or any(v is UNKNOWN or v != first for v in values[1:]):
                    result = UNKNOWN
                else:
                    result = first
        self._parameters[key] = result
        return result

    def _call(self, call: ast.Call, depth: int) -> Any:
        name = self.ctx.call_name(call)
        if name == "dict" and not call.args:
            result = {}
            for kw in call.keywords:
                if kw.arg is None:
                    return UNKNOWN
                result[kw.arg] = self.evaluate(kw.value, depth)
            return result
        if name in ("float", "int") and len(call.args) == 1 and not call.keywords:
            value = self.evaluate(call.args[0], depth)
            if isinstance(value, str | int | float) and not isinstance(value, bool):
                return float(value) if name == "float" else int(value)
            return UNKNOWN
        if isinstance(call.func, ast.Attribute) and call.func.attr == "get" and call.args:
            base = self.evaluate(call.func.value, depth)
            key = self.evaluate(call.args[0], depth)
            if isinstance(base, dict) and key is not UNKNOWN:
                if key in base:
                    return base[key]
                return self.evaluate(call.args[1], depth) if len(call.args) > 1 else None
        return UNKNOWN

    def _attribute(self, base_expr: ast.expr, attr: str, depth: int) -> Any:
        if self._is_parsed_args(base_expr):
            return self._argparse_default(attr, depth)
        return UNKNOWN

    # ------------------------------------------------------------------ argparse

    def _is_parsed_args(self, expr: ast.expr) -> bool:
        """Whether expr is the namespace returned by ArgumentParser.parse_args()."""
        if not self._parsers():
            return False
        resolved = self.ctx.resolve(expr)
        if isinstance(resolved, ast.Call):
            resolved = self.ctx.returned(resolved) or resolved
        match resolved:
            case ast.Call(func=ast.Attribute(attr="parse_args")):
                return True
            case ast.Subscript(
                value=ast.Call(func=ast.Attribute(attr="parse_known_args")),
                slice=ast.Constant(value=0),
            ):
                return True
            case ast.Name(id=name) if resolved is expr:
                # `def train(args, ...)` with the namespace passed in: one parser in the file
                # means these are its arguments.
                bindings = self.ctx.bindings(name, expr)
                return (
                    len(bindings) == 1
                    and bindings[0].kind == "param"
                    and (bindings[0].value is None)
                )
        return False

    def _parsers(self) -> dict[str, list[ast.Call]]:
        if self._argparse is None:
            dests: dict[str, list[ast.Call]] = {}
            for call in self.ctx.calls:
                if isinstance(call.func, ast.Attribute) and call.func.attr == "add_argument":
                    dest = _dest(call)
                    if dest:
                        dests.setdefault(dest, []).append(call)
            self._argparse = dests
        return self._argparse

    def _argparse_default(self, dest: str, depth: int) -> Any:
        calls = self._parsers().get(dest, [])
        if len(calls) != 1:
            return UNKNOWN
        call = calls[0]
        default_expr = self.ctx.argument(call, "default")
        if default_expr is None:
            return UNKNOWN
        value = self.evaluate(default_expr, depth)
        converter = self.ctx.argument(call, "type")
        if isinstance(value, str) and isinstance(converter, ast.Name):
            try:
                if converter.id == "float":
                    return float(value)
                if converter.id == "int":
                    return int(value)
            except ValueError:
                return UNKNOWN
        return value


def _dest(call: ast.Call) -> str | None:
    for kw in call.keywords:
        if (
            kw.arg == "dest"
            and isinstance(kw.value, ast.Constant)
            and isinstance(kw.value.value, str)
        ):
            return kw.value.value
    flags = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if not flags:
        return None
    long = [f for f in flags if f.startswith("--")]
    chosen = long[0] if long else flags[0]
    return chosen.lstrip("-").replace("-", "_")
