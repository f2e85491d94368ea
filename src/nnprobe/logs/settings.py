"""`[tool.nnprobe.logs]`: which columns play which role when names do not say it, which script
writes the logs, and which file patterns the language server watches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nnprobe.logs.series import ROLES

DEFAULT_PATTERNS = ["**/metrics.csv", "**/*.jsonl", "**/events.out.tfevents.*"]
_KEYS = ("columns", "script", "patterns")


def parse_logs(table: Mapping[str, Any]) -> dict[str, Any]:
    """The validated table; ValueError naming the bad key."""
    out: dict[str, Any] = {}
    for name, value in table.items():
        if name not in _KEYS:
            raise ValueError(f"unknown key {name!r} (known: {', '.join(_KEYS)})")
        if name == "columns":
            if not isinstance(value, Mapping):
                raise ValueError("columns must be a table of role = column name")
            for role, column in value.items():
                if role not in ROLES:
                    raise ValueError(f"columns: unknown role {role!r} (roles: {', '.join(ROLES)})")
                if not isinstance(column, str) or not column:
                    raise ValueError(f"columns.{role} must be a column name")
            out["columns"] = dict(value)
        elif name == "script":
            if not isinstance(value, str) or not value.endswith(".py"):
                raise ValueError('script must name a .py file, e.g. "train.py"')
            out["script"] = value
        else:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError('patterns must be a list of globs, e.g. ["**/metrics.csv"]')
            out["patterns"] = list(value)
    return out


def columns(config_logs: Mapping[str, Any]) -> dict[str, str]:
    value = config_logs.get("columns", {})
    return dict(value) if isinstance(value, Mapping) else {}


def patterns(config_logs: Mapping[str, Any]) -> list[str]:
    value = config_logs.get("patterns")
    return list(value) if isinstance(value, list) else list(DEFAULT_PATTERNS)
