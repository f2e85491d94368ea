"""Child processes die with the process that started them.

nnprobe's children (the language server's lint process, the probe worker) are killed on purpose by
their parent, but a parent that is itself killed (SIGKILL, the OOM killer, an editor that gives up
on it) runs no cleanup: its children used to live on, one stuck in a forward or idle forever with
the multiprocessing resource tracker beside it. A child calls `die_with_parent()` once, at start:
a daemon thread then checks twice a second whether the process was handed to another parent (what
happens to the children of a process that exits), and ends this one if so.

prctl(PR_SET_PDEATHSIG) is not used: the kernel's "parent" there is the thread that started the
child, not its process, and the language server starts the probe worker from short-lived threads,
so the worker was killed as soon as the thread that started it ended (every runtime diagnostic
in the editor timed out).

Ending is os._exit: the parent is gone, so there is nobody to flush results to.
"""

from __future__ import annotations

import os
import threading

POLL_SECONDS = 0.5
EXIT_STATUS = 70  # EX_SOFTWARE: the child did not finish its work

_started: set[int] = set()  # pids that have a watch (a forked child must start its own)


def _watch(parent: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_SECONDS):
        if os.getppid() != parent:
            os._exit(EXIT_STATUS)


def die_with_parent(parent: int | None = None) -> None:
    """End this process within POLL_SECONDS of `parent` (by default the current parent)
    exiting. Idempotent."""
    if os.getpid() in _started:
        return
    parent = os.getppid() if parent is None else parent
    if os.getppid() != parent:  # the parent exited before the watch started
        os._exit(EXIT_STATUS)
    _started.add(os.getpid())
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()
