"""Which files an inspection looks at: what was named, and what directories hold.

Symbolic links: a directory walk does not descend into linked folders (os.walk's default), and a
linked file whose target lies outside the workspace is reported (NP901) instead of read, because
nobody asked for that file; the CLI follows links the user named on the command line, since they
asked for exactly that file (`follow_links`). The editor's checkpoint watcher and the worker never
follow them (see `link_outside`).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nnprobe.core.config import Config
from nnprobe.core.reading import escapes

# The one list of checkpoint suffixes: the CLI's walk, the server's watcher and command, the
# pictures and the VS Code extension (tested against it) all take theirs from here.
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx")
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".env",
        "env",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        "site-packages",
        ".ipynb_checkpoints",
    }
)


@dataclass(frozen=True)
class Target:
    path: Path
    display: str  # as the user named it, joined with the path below it
    explicit: bool  # named on the command line rather than found in a directory
    follow_links: bool = False  # the user typed this path: read it wherever a link leads
    within: Path | None = None  # the folder named on the command line that the walk found it in


def link_outside(path: Path, roots: Iterable[Path]) -> Path | None:
    """Where `path` really is when a symbolic link (the file, or a folder on its way) leads
    outside every one of `roots`; None when no link does. A path outside the roots without any
    link is not this function's business: somebody named it."""
    return escapes(path, roots)


def roots_for(target: Target, config: Config) -> list[Path] | None:
    """Where a symbolic link from `target` may lead for it to be read: anywhere when the user
    named the file itself, else inside the config's root or the folder named on the command line
    (for `open_regular`'s `roots`)."""
    if target.follow_links:
        return None
    return [config.root] if target.within is None else [config.root, target.within]


def outside_message(real: Path) -> str:
    return (
        f"a symbolic link to {real}, outside the workspace: not read. nnprobe reads model files "
        "inside the workspace only, unless you name the file itself on the command line"
    )


def _is_virtualenv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").is_file()


def discover(
    paths: Iterable[str],
    config: Config,
    suffixes: frozenset[str],
    names: frozenset[str] = frozenset(),
) -> Iterator[Target]:
    """Files to inspect, in a stable order; a named file is always inspected, even if excluded
    by a directory rule, except when it matches `exclude` itself. `names` are glob patterns of
    file names handled whatever their suffix."""
    seen: set[Path] = set()
    for raw in paths:
        root = Path(raw)
        if root.is_dir():
            for dirpath, dirnames, filenames in os.walk(root):
                here = Path(dirpath)
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if d not in SKIP_DIRS
                    and not _is_virtualenv(here / d)
                    and not config.is_excluded(here / d)
                )
                for name in sorted(filenames):
                    path = here / name
                    wanted = path.suffix.lower() in suffixes or any(
                        fnmatch.fnmatch(name, pattern) for pattern in names
                    )
                    if not wanted or config.is_excluded(path):
                        continue
                    key = path.resolve()
                    if key not in seen:
                        seen.add(key)
                        yield Target(path, path.as_posix(), explicit=False, within=root)
        else:
            if config.is_excluded(root):
                continue
            key = root.resolve()
            if key not in seen:
                seen.add(key)
                yield Target(root, root.as_posix(), explicit=True, follow_links=True)
