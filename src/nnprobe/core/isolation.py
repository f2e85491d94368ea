"""How nnprobe starts a Python child so that the folder it runs in cannot shadow a module.

Python puts the working directory (`-m`, `-c`) or the script's folder first on `sys.path`, so a
checkout holding `numpy.py`, `json.py` or an `nnprobe/` package would have it imported in place of
the real one by any child started there: the probe worker, the lint process, the resource tracker.
Every child therefore runs with safe-path semantics (`-P`, or `PYTHONSAFEPATH=1` where the command
line is not ours, as with multiprocessing), and the import path it inherits never names the working
directory: workspace code is imported only by the trusted import (probe/workspace_import.py), which
puts the script's folder on the path itself, for as long as it runs.

The user's own `PYTHONPATH` is honoured as written (it is how a trusted pickled model finds its
classes), except for empty entries, which Python reads as the working directory: the result of
`PYTHONPATH=$PYTHONPATH:/x` with `PYTHONPATH` unset.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping

SAFE_PATH = "-P"  # Python 3.11+: no working directory or script folder prepended to sys.path
SAFE_PATH_ENV = "PYTHONSAFEPATH"


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def inherited_path(entries: Iterable[str], cwd: str | None = None) -> list[str]:
    """`entries` (this process's sys.path) as a child may inherit them: without '', relative
    entries (both resolve against the child's working directory, the user's checkout) and the
    working directory itself, however spelled."""
    here = cwd if cwd is not None else os.getcwd()
    kept: list[str] = []
    for entry in entries:
        if not entry or not os.path.isabs(entry) or _same(entry, here):
            continue
        if entry not in kept:
            kept.append(entry)
    return kept


def child_environment(environ: Mapping[str, str], path: Iterable[str]) -> dict[str, str]:
    """`environ` for a Python child: safe-path on, and `PYTHONPATH` = `path` followed by the
    non-empty entries of the user's own `PYTHONPATH`."""
    env = dict(environ)
    env[SAFE_PATH_ENV] = "1"
    user = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    joined = list(dict.fromkeys([*path, *user]))
    if joined:
        env["PYTHONPATH"] = os.pathsep.join(joined)
    else:
        env.pop("PYTHONPATH", None)
    return env


@contextlib.contextmanager
def safe_path_environment() -> Iterator[None]:
    """`PYTHONSAFEPATH=1` in this process's environment while children are started whose command
    line Python builds (multiprocessing's spawn and its resource tracker add `-c` and no `-P`
    unless this process has it); restored after, so no later child of ours inherits it unasked."""
    previous = os.environ.get(SAFE_PATH_ENV)
    os.environ[SAFE_PATH_ENV] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(SAFE_PATH_ENV, None)
        else:
            os.environ[SAFE_PATH_ENV] = previous
