"""Which Config lints a document: the workspace's own file, with the editor's settings over it.

Precedence, highest first: editor settings (workspace/configuration, then initializationOptions),
the nearest nnprobe.toml / .nnprobe.toml / pyproject.toml [tool.nnprobe] at or above the document,
the defaults. Editor settings apply the way the CLI's flags do: `select` replaces the file's
selection, `extend-select` and `ignore` add to it; `severity`, `rules` (per option) and
`per-file-ignores` override per key; `exclude` adds patterns. So a team's pyproject.toml stays the
base and a user can still silence a rule locally.

A found settings file that is a link out of the workspace, not a regular file, too large or nested
too deeply is not obeyed: the user is warned once and the defaults lint (core.config).

Files are read once and cached until `invalidate()` (a config file saved or changed on disk, or
settings changed): a keystroke never touches the file system.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from nnprobe.core.config import (
    CONFIG_FILES,
    Config,
    ConfigError,
    find_config,
    load_found,
    parse_config,
)
from nnprobe.server.settings import SECTION


def apply_editor(config: Config, lint: Mapping[str, Any]) -> Config:
    """`config` with the editor's lint table applied over it (the table is already valid)."""
    if not lint:
        return config
    editor = parse_config(lint, root=config.root, prefix=SECTION)
    combined = config.with_overrides(
        select=lint.get("select"),
        extend_select=lint.get("extend-select"),
        ignore=lint.get("ignore"),
    )
    combined.severity = {**config.severity, **editor.severity}
    combined.rules = {code: dict(options) for code, options in config.rules.items()}
    for code, options in editor.rules.items():
        combined.rules[code] = {**combined.rules.get(code, {}), **options}
    combined.exclude = [*config.exclude, *editor.exclude]
    combined.per_file_ignores = dict(config.per_file_ignores)
    for pattern, codes in editor.per_file_ignores.items():
        combined.per_file_ignores[pattern] = combined.per_file_ignores.get(pattern, set()) | codes
    return combined


class ConfigResolver:
    def __init__(
        self,
        root: Path | None,
        lint: Mapping[str, Any],
        on_error: Callable[[str], None],
    ) -> None:
        self.root = root
        self.lint = dict(lint)
        self._on_error = on_error
        self._found: dict[Path, Path | None] = {}
        self._files: dict[Path | None, Config] = {}
        self._last_good: dict[Path, Config] = {}
        self._reported: set[str] = set()

    def invalidate(self, lint: Mapping[str, Any] | None = None) -> None:
        """Forget what was read (and take new editor settings when given)."""
        if lint is not None:
            self.lint = dict(lint)
        self._found.clear()
        self._files.clear()
        self._reported.clear()

    def config_file(self, path: Path | None) -> Path | None:
        start = path.parent if path is not None else self.root
        if start is None:
            return None
        if start not in self._found:
            self._found[start] = find_config(start, self._roots())
        return self._found[start]

    def config_for(self, path: Path | None) -> Config:
        """The Config for a document at `path` (None: an unsaved buffer, linted with the
        workspace's config)."""
        source = self.config_file(path)
        if source not in self._files:
            self._files[source] = apply_editor(self._read(source), self.lint)
        return self._files[source]

    def _read(self, source: Path | None) -> Config:
        if source is None:
            return Config.default(root=self.root)
        try:
            config = load_found(source, self._roots())
        except ConfigError as exc:
            self._report(str(exc))
            return self._last_good.get(source) or Config.default(root=source.parent)
        for _, message in config.problems:
            self._report(message)
        self._last_good[source] = config
        return config

    def _roots(self) -> list[Path]:
        return [self.root] if self.root is not None else []

    def _report(self, message: str) -> None:
        if message not in self._reported:
            self._reported.add(message)
            self._on_error(message)


def is_config_file(path: Path) -> bool:
    return path.name in CONFIG_FILES


__all__ = ["CONFIG_FILES", "ConfigResolver", "apply_editor", "is_config_file"]
