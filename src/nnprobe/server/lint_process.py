"""What the lint process runs: static checks on buffer text, returning findings.

The checks run in a child process rather than a thread because a thread shares the server's GIL:
while a large script is analysed, every message the event loop reads waits for the GIL at each
hand-off, and a burst of edits crawled (a code action took 250 ms instead of 5 ms in
bench/lsp_bench.py). In a child the loop and the analysis run on separate cores.

This module is what the child imports: core and inspectors only, never pygls or lsprotocol, so
the child starts fast and stays small. Positions are converted in the server, which knows the
client's encoding.

The child ends with the server (core/lifetime.py), watched from the moment it imports this module
or log_process.py, whichever of the two its first job names; the resource tracker multiprocessing
starts beside it exits once neither holds its pipe. `stop` ends it without waiting for the check
under way, when the server shuts down.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from nnprobe.core.config import Config
from nnprobe.core.engine import Report
from nnprobe.core.files import Target
from nnprobe.core.finding import Finding
from nnprobe.core.lifetime import die_with_parent

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor


def watch_parent_if_child() -> None:
    """In a multiprocessing child (the lint process), end it when its parent ends. The server
    imports these modules too, before it has imported multiprocessing: nothing happens there."""
    multiprocessing = sys.modules.get("multiprocessing")
    parent = multiprocessing.parent_process() if multiprocessing is not None else None
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid)


watch_parent_if_child()

# The pre-filter `nnprobe inspect` applies to files on disk: Python that imports no torch is not a
# training script, and even its syntax errors are another tool's business.
_TORCH_IMPORT = re.compile(
    r"^[ \t]*(?:import|from)[ \t]+(?:torch|lightning|pytorch_lightning)\b", re.MULTILINE
)


def imports_torch(text: str) -> bool:
    return _TORCH_IMPORT.search(text) is not None


def warm() -> int:
    """Load every rule ahead of the first real check; the child's pid, for diagnostics."""
    from nnprobe.core.registry import all_rules

    all_rules()
    return os.getpid()


def findings(text: str, path: Path | None, display: str, config: Config) -> list[Finding]:
    """Static findings on a buffer; none for excluded paths and files that import no torch."""
    from nnprobe.inspectors.script.handler import check_text

    if (path is not None and config.is_excluded(path)) or not imports_torch(text):
        return []
    return check_text(text, display, config, path or display)


def inspect_script(text: str | None, path: Path | None, display: str, config: Config) -> Report:
    """`nnprobe inspect` on one script: the open buffer's text if given, else the file on disk."""
    from nnprobe.inspectors.script.handler import check_script

    if text is not None:
        if not imports_torch(text):
            return Report()
        return Report(findings=findings(text, path, display, config), files=1)
    if path is None:
        return Report()
    result = check_script(Target(path, display, explicit=True), config)
    return Report(findings=result.findings, files=1 if result.analysed else 0)


def stop(executor: ProcessPoolExecutor) -> None:
    """Shut the pool down now: queued checks are dropped and the child is killed, so neither a
    long check under way nor the interpreter's exit (which joins the pool) waits for it."""
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
