"""Which files are checkpoints to watch, and finding their changes by polling when the client
cannot watch files for us (no dynamic registration of workspace/didChangeWatchedFiles).

Polling walks the workspace every `pollInterval` milliseconds, comparing (mtime, size) per file;
it skips folders that never hold the user's checkpoints but can hold thousands of files (.git,
virtual environments, node_modules, caches) and the config's `exclude` patterns. The first walk
is the baseline: files already there are not reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lsprotocol import types

from nnprobe.core.files import CHECKPOINT_SUFFIXES  # the one list

GLOB = "**/*.{" + ",".join(sorted(s.lstrip(".") for s in CHECKPOINT_SUFFIXES)) + "}"
SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", "__pycache__", ".mypy_cache", ".ruff_cache",
     ".pytest_cache", ".tox", ".nox", ".venv", "venv", ".cache"}
)  # fmt: skip
DEFAULT_POLL_MS = 2000.0

Snapshot = dict[str, tuple[int, int]]


def is_checkpoint(path: Path) -> bool:
    return path.suffix.lower() in CHECKPOINT_SUFFIXES


def _skipped(directory: str, name: str) -> bool:
    return name in SKIPPED_DIRS or os.path.exists(os.path.join(directory, name, "pyvenv.cfg"))


def scan(root: Path, excluded: Callable[[Path], bool]) -> Snapshot:
    """(mtime_ns, size) of every checkpoint under `root`."""
    found: Snapshot = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [
            d for d in dirs if not _skipped(directory, d) and not excluded(Path(directory, d))
        ]
        for name in files:
            path = Path(directory, name)
            if not is_checkpoint(path) or excluded(path):
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            found[str(path)] = (stat.st_mtime_ns, stat.st_size)
    return found


def changes(old: Snapshot, new: Snapshot) -> list[types.FileEvent]:
    """What a file watcher would have reported between two snapshots."""
    events = []
    for path, stamp in new.items():
        if path not in old:
            events.append(
                types.FileEvent(uri=Path(path).as_uri(), type=types.FileChangeType.Created)
            )
        elif old[path] != stamp:
            events.append(
                types.FileEvent(uri=Path(path).as_uri(), type=types.FileChangeType.Changed)
            )
    for path in old.keys() - new.keys():
        events.append(types.FileEvent(uri=Path(path).as_uri(), type=types.FileChangeType.Deleted))
    return events
