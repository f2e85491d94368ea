"""What the lint process runs for training logs: NP5xx findings on a log that a training job is
still writing, and the curves picture.

Readers are kept here, in the child, one per log file, so each change of a growing log reads only
what was appended (the child lives as long as the server; if it dies, the next read starts over).
TensorBoard's reader imports numpy: that is one more reason this runs in the child, never in the
server process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnprobe.core.config import Config
from nnprobe.core.files import Target
from nnprobe.core.finding import Finding
from nnprobe.server.lint_process import watch_parent_if_child

watch_parent_if_child()

_READERS: dict[tuple[Path, tuple[tuple[str, str], ...]], Any] = {}


def log_findings(path: Path, display: str, config: Config) -> list[Finding]:
    """The log's NP5xx findings and their copies on the training script (whose `path` is the
    script's absolute path). Empty for a file that is not (yet) a training log."""
    from nnprobe.inspectors.training_logs import check_log
    from nnprobe.logs.reader import LogReader
    from nnprobe.logs.settings import columns

    if config.is_excluded(path):
        return []
    cols = columns(config.logs)
    key = (path.resolve(), tuple(sorted(cols.items())))
    if not path.exists():
        _READERS.pop(key, None)
        return []
    reader = _READERS.get(key) or _READERS.setdefault(key, LogReader(path, cols, [config.root]))
    result = check_log(Target(path, display, explicit=False), config, reader)
    if not result.analysed:
        _READERS.pop(key, None)
    return result.findings


def forget(path: Path) -> None:
    for key in [k for k in _READERS if k[0] == path.resolve()]:
        del _READERS[key]


def curves(path: Path, config: Config) -> tuple[bytes, str]:
    """(PNG, title); raises NotALog, OSError or ImportError with a message for the user."""
    from nnprobe.logs.curves import curves_png

    return curves_png(path, config)
