"""The server's settings: one validated object built from initializationOptions and the client's
`nnprobe` configuration section, so a typo is reported once, by key, and never reaches the linter.

Keys (camelCase or the kebab-case of `[tool.nnprobe]`; null means unset):

    select, extend-select, ignore, severity, rules, exclude, per-file-ignores
                        the lint table, same shapes as [tool.nnprobe]; applied over the workspace's
                        own config file the way command-line flags are (see configs.py)
    debounce            milliseconds between the last keystroke and the static run (default 200)
    logLevel            error | warning | info | debug | off: what reaches window/logMessage
    interpreter         the Python that runs the worker (default: the server's own)
    trusted             whether the workspace may run its own code (default false); false also
                        ignores the workspace config's allow-pickle (nnprobe.core.trust)
    trace               ignored: vscode-languageclient's own setting lives in the same section

An empty `select` is treated as unset, because VS Code sends [] for an array setting nobody set.
Other components add keys through `register_key`, so their settings are validated here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nnprobe.core.config import ConfigError, parse_config

SECTION = "nnprobe"
DEFAULT_DEBOUNCE_MS = 200.0
MAX_DEBOUNCE_MS = 10_000.0

LOG_LEVELS = {
    "off": logging.CRITICAL + 10,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}

_ALIASES = {"extendSelect": "extend-select", "perFileIgnores": "per-file-ignores"}
LINT_KEYS = (
    "select",
    "extend-select",
    "ignore",
    "severity",
    "rules",
    "exclude",
    "per-file-ignores",
)
_TOLERATED = frozenset({"trace"})

Validator = Callable[[Any], Any]
_EXTRA_KEYS: dict[str, Validator] = {}


def register_key(name: str, validate: Validator) -> None:
    """Accept `name` in the settings; `validate` returns the value to keep or raises ValueError
    with a message naming what was expected. Kept in `Settings.extra[name]`."""
    _EXTRA_KEYS[name] = validate


@dataclass(frozen=True)
class Settings:
    lint: Mapping[str, Any] = field(default_factory=dict)
    debounce_ms: float = DEFAULT_DEBOUNCE_MS
    log_level: str = "info"
    interpreter: str | None = None
    trusted: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def debounce(self) -> float:
        """Seconds, as asyncio counts them."""
        return self.debounce_ms / 1000.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **dict(self.lint),
            "debounce": self.debounce_ms,
            "logLevel": self.log_level,
            "interpreter": self.interpreter,
            "trusted": self.trusted,
            **dict(self.extra),
        }


def section(options: object) -> dict[str, Any]:
    """The nnprobe table of initializationOptions or a pushed didChangeConfiguration payload,
    which clients send either bare or wrapped as {"nnprobe": {...}}."""
    if not isinstance(options, Mapping):
        return {}
    inner = options.get(SECTION)
    return dict(inner) if isinstance(inner, Mapping) else dict(options)


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win key by key; a null value leaves the earlier one in place."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({k: v for k, v in layer.items() if v is not None})
    return merged


def parse_settings(raw: Mapping[str, Any]) -> Settings:
    """Validate a settings table; every mistake is a ConfigError naming the key."""
    lint: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = _ALIASES.get(key, key)
        if value is None or name in _TOLERATED:
            continue
        if name in LINT_KEYS:
            if name == "select" and value == []:
                continue
            lint[name] = value
        elif name in _EXTRA_KEYS:
            try:
                extra[name] = _EXTRA_KEYS[name](value)
            except ValueError as exc:
                raise ConfigError(f"{SECTION}.{key}: {exc}") from None
        else:
            values[name] = value
    parse_config(lint, prefix=SECTION)  # raises ConfigError naming the bad key
    debounce = values.pop("debounce", DEFAULT_DEBOUNCE_MS)
    if isinstance(debounce, bool) or not isinstance(debounce, int | float):
        raise ConfigError(f"{SECTION}.debounce must be a number of milliseconds")
    if not 0 <= debounce <= MAX_DEBOUNCE_MS:
        raise ConfigError(f"{SECTION}.debounce must be between 0 and {MAX_DEBOUNCE_MS:g} ms")
    log_level = values.pop("logLevel", "info")
    if not isinstance(log_level, str) or log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"{SECTION}.logLevel must be one of {', '.join(LOG_LEVELS)}")
    interpreter = values.pop("interpreter", None)
    if interpreter is not None and (not isinstance(interpreter, str) or not interpreter.strip()):
        raise ConfigError(f"{SECTION}.interpreter must be the path of a Python executable")
    trusted = values.pop("trusted", False)
    if not isinstance(trusted, bool):
        raise ConfigError(f"{SECTION}.trusted must be true or false")
    if values:
        known = sorted({*LINT_KEYS, "debounce", "logLevel", "interpreter", "trusted", *_EXTRA_KEYS})
        raise ConfigError(
            f"unknown setting {SECTION}.{next(iter(values))} (known: {', '.join(known)})"
        )
    return Settings(
        lint=lint,
        debounce_ms=float(debounce),
        log_level=log_level.lower(),
        interpreter=interpreter,
        trusted=trusted,
        extra=extra,
    )
