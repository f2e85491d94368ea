"""Every rule nnprobe knows, by code and by name, and how a user's code list expands."""

from __future__ import annotations

import re
from collections.abc import Iterable

from nnprobe.core.rule import Rule

_RULES: dict[str, type[Rule]] = {}
_CODE = re.compile(r"NP\d{3}")


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator: add a rule; codes and names must be unique (codes are a public contract)."""
    if not _CODE.fullmatch(cls.code):
        raise ValueError(f"bad rule code {cls.code!r}")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", cls.name):
        raise ValueError(f"rule name {cls.name!r} is not kebab-case")
    for other in _RULES.values():
        if other is not cls and (other.code == cls.code or other.name == cls.name):
            raise ValueError(f"{cls.code} {cls.name} clashes with {other.code} {other.name}")
    _RULES[cls.code] = cls
    return cls


def _load() -> None:
    # Rules live in nnprobe.inspectors; importing it registers them.
    import nnprobe.inspectors  # noqa: F401


def all_rules() -> list[type[Rule]]:
    _load()
    return [_RULES[code] for code in sorted(_RULES)]


def get_rule(code_or_name: str) -> type[Rule] | None:
    _load()
    key = code_or_name.strip()
    if key.upper() in _RULES:
        return _RULES[key.upper()]
    for rule in _RULES.values():
        if rule.name == key.lower():
            return rule
    return None


def expand(selectors: Iterable[str]) -> set[str]:
    """Codes matched by selectors: exact codes, names, prefixes (`NP1`, `NP10`) or `ALL`.

    Raises ValueError naming the first selector that matches no rule.
    """
    _load()
    codes: set[str] = set()
    for raw in selectors:
        selector = raw.strip()
        if selector.upper() == "ALL":
            codes.update(_RULES)
            continue
        rule = get_rule(selector)
        if rule is not None:
            codes.add(rule.code)
            continue
        prefix = selector.upper()
        # A band or sub-band prefix (NP1, NP10) is valid even before any of its rules exist.
        if not re.fullmatch(r"NP\d{1,2}", prefix):
            raise ValueError(f"unknown rule code or name {selector!r}")
        codes.update(code for code in _RULES if code.startswith(prefix))
    return codes
