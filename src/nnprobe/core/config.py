"""Settings from `[tool.nnprobe]` in pyproject.toml or from nnprobe.toml, validated up front.

Every mistake a user can make in the file becomes a ConfigError whose message names the key and the
file, never a traceback. A settings file that was found rather than named and that nnprobe will not
read (a symbolic link out of the workspace, not a regular file, over LIMITS["config"], nested past
what the TOML parser can follow) is not obeyed: the defaults are used and the refusal is kept in
`Config.problems`, which the front doors report (NP901 in `inspect`, a warning in the editor).
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from nnprobe.core import reading
from nnprobe.core.finding import Severity
from nnprobe.core.registry import all_rules, expand, get_rule

CONFIG_FILES = ("nnprobe.toml", ".nnprobe.toml", "pyproject.toml")

_KEYS = {
    "select": "codes, names or prefixes of the rules to run (default: every rule on by default)",
    "extend-select": "rules to run in addition to the default set",
    "ignore": "codes, names or prefixes of the rules never to run",
    "severity": 'per-code severity overrides, e.g. { NP103 = "warning" }',
    "rules": "per-rule thresholds, e.g. [tool.nnprobe.rules.NP101] sgd-max = 0.05",
    "exclude": "glob patterns of paths not to inspect",
    "per-file-ignores": "glob pattern -> codes to ignore in matching files",
    "allow-pickle": "load checkpoints that need arbitrary unpickling (only for files you trust); "
    "ignored in an untrusted run (--untrusted, NNPROBE_UNTRUSTED=1, --no-import, the editor's "
    "untrusted workspace)",
    "models": 'checkpoint glob -> model factory, e.g. { "runs/*.pt" = "train.py:Net" }',
    "probe": 'probe inputs: a data file ("probe.npz") or a callable ("train.py:probe_batch")',
    "input-shape": "one sample's shape for synthetic probe inputs, e.g. [3, 32, 32]",
    "probe-batch": "samples per forward pass while probing (bounds the probe's memory)",
    "logs": 'training logs: { columns = { val-loss = "valid/loss" }, script = "train.py" }',
}
DEFAULT_PROBE_TIMEOUT = 120.0


class ConfigError(Exception):
    """A user mistake in settings; the message is meant to be shown as is."""


class ConfigRefused(ConfigError):
    """A settings file nnprobe will not read at all (see the module docstring)."""


@dataclass(frozen=True)
class ModelEntry:
    """The model factory (`file.py:Name`) for the checkpoints matching `pattern` (every checkpoint
    when None); the file and the pattern are relative to `base`."""

    factory: str
    pattern: str | None = None
    base: Path = field(default_factory=Path.cwd)
    origin: str = "[tool.nnprobe.models]"

    @property
    def script(self) -> Path:
        return self.base / split_factory(self.factory)[0]

    @property
    def name(self) -> str:
        return split_factory(self.factory)[1]

    def matches(self, path: Path | str) -> bool:
        if self.pattern is None:
            return True
        p = Path(path)
        try:
            rel = PurePosixPath(p.resolve().relative_to(self.base.resolve())).as_posix()
        except ValueError:
            rel = PurePosixPath(p).as_posix()
        return _glob_match(rel, self.pattern)


def split_factory(text: str) -> tuple[str, str]:
    """`"train.py:Net"` -> ("train.py", "Net"); ValueError when it is not of that form."""
    file, sep, name = text.rpartition(":")
    if not sep or not file.endswith(".py") or not all(p.isidentifier() for p in name.split(".")):
        raise ValueError(f"{text!r} must look like 'file.py:Name' (a .py file and a name in it)")
    return file, name


@dataclass
class Config:
    select: set[str] = field(default_factory=set)
    ignore: set[str] = field(default_factory=set)
    severity: dict[str, Severity] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    per_file_ignores: dict[str, set[str]] = field(default_factory=dict)
    allow_pickle: bool = False
    models: list[ModelEntry] = field(default_factory=list)  # first match wins
    probe: str | None = None  # a data file or "file.py:callable", relative to probe_base
    probe_base: Path | None = None
    probe_named: bool = False  # --probe: the user typed it, so it is read wherever it is
    input_shape: tuple[int, ...] | None = None
    probe_batch: int | None = None
    logs: dict[str, Any] = field(default_factory=dict)  # validated by nnprobe.logs.settings
    # Set by the front door, not the file: whether to run probes at all, whether workspace code
    # may be imported (a trusted workspace), and each probe's time budget in seconds.
    run_probes: bool = False
    trusted: bool = False
    probe_timeout: float = DEFAULT_PROBE_TIMEOUT
    root: Path = field(default_factory=Path.cwd)
    source: Path | None = None
    # Settings files found but not obeyed, and why: (the file, the message for the user).
    problems: list[tuple[Path, str]] = field(default_factory=list)

    @classmethod
    def default(cls, root: Path | None = None) -> Config:
        codes = {rule.code for rule in all_rules() if rule.enabled_by_default}
        return cls(select=codes, root=root or Path.cwd())

    def relative(self, path: Path | str) -> str:
        """The path relative to the config root, in POSIX form, for glob matching."""
        p = Path(path)
        try:
            return PurePosixPath(p.resolve().relative_to(self.root.resolve())).as_posix()
        except ValueError:
            return PurePosixPath(p).as_posix()

    def is_excluded(self, path: Path | str) -> bool:
        rel = self.relative(path)
        return any(_glob_match(rel, pattern) for pattern in self.exclude)

    def enabled_codes(self, path: Path | str | None = None) -> set[str]:
        codes = self.select - self.ignore
        if path is not None and self.per_file_ignores:
            rel = self.relative(path)
            for pattern, ignored in self.per_file_ignores.items():
                if _glob_match(rel, pattern):
                    codes -= ignored
        return codes

    def severity_for(self, code: str, default: Severity) -> Severity:
        return self.severity.get(code, default)

    def with_overrides(
        self,
        select: Iterable[str] | None = None,
        extend_select: Iterable[str] | None = None,
        ignore: Iterable[str] | None = None,
    ) -> Config:
        """Command-line flags over the file: --select replaces, --ignore and --extend-select add."""
        new = Config(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        try:
            if select is not None:
                new.select = expand(select)
            if extend_select is not None:
                new.select = new.select | expand(extend_select)
            if ignore is not None:
                new.ignore = new.ignore | expand(ignore)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return new


def _glob_match(rel: str, pattern: str) -> bool:
    """Gitignore-flavoured match: a pattern without '/' matches any path component."""
    pattern = pattern.rstrip("/")
    if fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(rel, pattern + "/*"):
        return True
    if "/" not in pattern:
        parts = rel.split("/")
        return any(fnmatch.fnmatch(part, pattern) for part in parts)
    return fnmatch.fnmatch(rel, "*/" + pattern) or fnmatch.fnmatch(rel, "*/" + pattern + "/*")


def find_config(start: Path, roots: Iterable[Path] = ()) -> Path | None:
    """The nearest nnprobe.toml, or pyproject.toml with [tool.nnprobe], at or above start; also a
    pyproject.toml nnprobe refuses to read, so that loading it reports why."""
    start = start.resolve()
    directory = start if start.is_dir() else start.parent
    for folder in (directory, *directory.parents):
        for name in CONFIG_FILES:
            candidate = folder / name
            if not os.path.lexists(candidate):
                continue
            if name != "pyproject.toml":
                return candidate
            try:
                data = _read_toml(candidate, _config_roots(candidate, roots))
            except ConfigRefused:
                return candidate
            except ConfigError:
                continue  # a broken pyproject.toml is another tool's business
            if "nnprobe" in data.get("tool", {}):
                return candidate
    return None


def _config_roots(path: Path, roots: Iterable[Path]) -> list[Path]:
    """A found settings file may be a link within its own folder or the workspace, no further."""
    return [path.parent, *roots]


def _read_toml(path: Path, roots: list[Path] | None) -> dict[str, Any]:
    """The parsed file through the guarded reader; ConfigRefused when it is not read at all."""
    try:
        data = reading.read_bytes(path, what="config", limit=reading.LIMITS["config"], roots=roots)
    except reading.Unreadable as exc:
        if not os.path.lexists(path):
            raise ConfigError(f"{path}: no such config file") from None
        raise ConfigRefused(exc.message) from None
    try:
        return tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively: a few hundred levels end
        # in RecursionError, which no real settings file comes near.
        raise ConfigRefused(
            f"config {path} nests arrays or tables deeper than nnprobe's TOML parser follows "
            "(a few hundred levels): not read"
        ) from None


def load_config(
    path: Path | None = None, start: Path | None = None, roots: Iterable[Path] = ()
) -> Config:
    """Read `path`, or the nearest config above `start` (default: cwd); defaults when none.
    A named `path` is read wherever a link leads, and any failure to read it is a ConfigError;
    a found one is read as `load_found` reads it."""
    if path is None:
        path = find_config(start or Path.cwd(), roots)
        if path is None:
            return Config.default(root=(start or Path.cwd()).resolve())
        return load_found(path, roots)
    return _parse_file(path, _read_toml(path, None))


def load_found(path: Path, roots: Iterable[Path] = ()) -> Config:
    """A config that find_config found, read only if no link leads out of its folder or `roots`
    (the workspace); one that is refused gives the defaults, with the reason in `problems`."""
    try:
        data = _read_toml(path, _config_roots(path, roots))
    except ConfigRefused as exc:
        config = Config.default(root=path.absolute().parent)
        config.problems.append((path, f"{exc}; the default settings are used"))
        return config
    return _parse_file(path, data)


def _parse_file(path: Path, data: Mapping[str, Any]) -> Config:
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("nnprobe", {})
        prefix = "tool.nnprobe"
    else:
        table, prefix = data, ""
    return parse_config(table, root=path.resolve().parent, source=path, prefix=prefix)


def parse_config(
    table: Mapping[str, Any],
    root: Path | None = None,
    source: Path | None = None,
    prefix: str = "tool.nnprobe",
) -> Config:
    """Validate a settings table (from TOML, or LSP workspace/configuration) into a Config."""
    where = f"{source}: " if source else ""

    def key(*parts: str) -> str:
        return ".".join(p for p in (prefix, *parts) if p)

    def fail(message: str) -> ConfigError:
        return ConfigError(where + message)

    if not isinstance(table, Mapping):
        raise fail(f"{prefix or 'config'} must be a table")
    for name in table:
        if name not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise fail(f"unknown key {key(name)!r} (known keys: {known})")

    config = Config.default(root=root)
    config.source = source

    def codes(name: str) -> set[str]:
        value = table[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"{key(name)} must be a list of rule codes or names")
        try:
            return expand(value)
        except ValueError as exc:
            raise fail(f"{key(name)}: {exc}") from None

    if "select" in table:
        config.select = codes("select")
    if "extend-select" in table:
        config.select |= codes("extend-select")
    if "ignore" in table:
        config.ignore = codes("ignore")

    for code_key, level in _table(table, "severity", key, fail).items():
        rule = get_rule(code_key)
        if rule is None:
            raise fail(f"{key('severity', code_key)}: unknown rule code or name")
        try:
            config.severity[rule.code] = Severity(str(level).lower())
        except ValueError:
            raise fail(
                f"{key('severity', code_key)} must be one of error, warning, info; got {level!r}"
            ) from None

    for code_key, settings in _table(table, "rules", key, fail).items():
        rule = get_rule(code_key)
        if rule is None:
            raise fail(f"{key('rules', code_key)}: unknown rule code or name")
        if not isinstance(settings, Mapping):
            raise fail(f"{key('rules', code_key)} must be a table of options")
        for option, value in settings.items():
            if option not in rule.options:
                known = ", ".join(sorted(rule.options)) or "none"
                raise fail(
                    f"unknown option {key('rules', code_key, option)!r} "
                    f"({rule.code} options: {known})"
                )
            try:
                rule.options[option].coerce(option, value)
            except ValueError as exc:
                raise fail(f"{key('rules', code_key, option)}: {exc}") from None
        config.rules[rule.code] = dict(settings)

    if "exclude" in table:
        exclude = table["exclude"]
        if not isinstance(exclude, list) or not all(isinstance(v, str) for v in exclude):
            raise fail(f"{key('exclude')} must be a list of glob patterns")
        config.exclude = list(exclude)

    if "allow-pickle" in table:
        if not isinstance(table["allow-pickle"], bool):
            raise fail(f"{key('allow-pickle')} must be true or false")
        config.allow_pickle = table["allow-pickle"]

    base = root or Path.cwd()
    for pattern, factory in _table(table, "models", key, fail).items():
        if not isinstance(factory, str):
            raise fail(f'{key("models", pattern)} must be a string like "train.py:Net"')
        try:
            split_factory(factory)
        except ValueError as exc:
            raise fail(f"{key('models', pattern)}: {exc}") from None
        config.models.append(ModelEntry(factory, pattern, base, f"{key('models')}"))

    if "probe" in table:
        probe = table["probe"]
        if not isinstance(probe, str) or not probe.strip():
            raise fail(
                f'{key("probe")} must be a data file ("probe.npz") or a callable '
                f'("train.py:probe_batch")'
            )
        config.probe, config.probe_base = probe, base

    if "input-shape" in table:
        shape = table["input-shape"]
        if isinstance(shape, str):
            parts = shape.replace("x", ",").replace(" ", "").split(",")
            # isascii: '²'.isdigit() holds but int('²') raises; a 19-digit dimension is no shape.
            shape = [
                int(p) if p.isascii() and p.isdigit() and len(p) < 19 else p for p in parts if p
            ]
        if (
            not isinstance(shape, list)
            or not shape
            or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)
        ):
            raise fail(f"{key('input-shape')} must be positive integers, e.g. [3, 32, 32]")
        config.input_shape = tuple(shape)

    if "probe-batch" in table:
        batch = table["probe-batch"]
        if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
            raise fail(f"{key('probe-batch')} must be a positive integer")
        config.probe_batch = batch

    if "logs" in table:
        from nnprobe.logs.settings import parse_logs

        try:
            config.logs = parse_logs(_table(table, "logs", key, fail))
        except ValueError as exc:
            raise fail(f"{key('logs')}: {exc}") from None

    for pattern, ignored in _table(table, "per-file-ignores", key, fail).items():
        if not isinstance(ignored, list) or not all(isinstance(v, str) for v in ignored):
            raise fail(f"{key('per-file-ignores', pattern)} must be a list of rule codes")
        try:
            config.per_file_ignores[pattern] = expand(ignored)
        except ValueError as exc:
            raise fail(f"{key('per-file-ignores', pattern)}: {exc}") from None
    return config


def _table(table: Mapping[str, Any], name: str, key: Any, fail: Any) -> Mapping[str, Any]:
    value = table.get(name, {})
    if not isinstance(value, Mapping):
        raise fail(f"{key(name)} must be a table")
    return value


def describe_keys() -> dict[str, str]:
    return dict(_KEYS)
