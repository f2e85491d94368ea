"""Child processes die with the process that started them.

nnprobe's children (the language server's lint process, the probe worker) are killed on purpose by
their parent, but a parent that is itself killed (SIGKILL, the OOM killer, an editor that gives up
on it) runs no cleanup: its children used to live on, one stuck in a forward or idle forever with
the multiprocessing resource tracker beside it. A child calls `die_with_parent()` once, at start:

- on Linux, prctl(PR_SET_PDEATHSIG, SIGKILL) asks the kernel to kill it the moment its parent
  exits. The kernel's "parent" is the thread that started the child, so this alone would also
  fire if only that thread ended; nnprobe starts its children from threads that live as long as
  their process (the main thread, the event loop's executor);
- everywhere, a daemon thread checks twice a second whether the process was handed to another
  parent (what happens to the children of a process that exits), and ends this one if so.

Ending is os._exit: the parent is gone, so there is nobody to flush results to.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

POLL_SECONDS = 0.5
EXIT_STATUS = 70  # EX_SOFTWARE: the child did not finish its work
_PR_SET_PDEATHSIG = 1

_started: set[int] = set()  # pids that have a watch (a forked child must start its own)


def _kernel_kill_on_parent_death() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    stop = threading.Event()
    while not stop.wait(POLL_SECONDS):
        if os.getppid() != parent:
            os._exit(EXIT_STATUS)


def die_with_parent(parent: int | None = None) -> bool:
    """End this process when `parent` (by default the current parent) exits; True when the
    kernel does it at once (Linux), False when only the polling watch does. Idempotent."""
    if os.getpid() in _started:
        return True
    parent = os.getppid() if parent is None else parent
    kernel = _kernel_kill_on_parent_death()
    # The parent may have exited before prctl: the signal would then never come.
    if os.getppid() != parent:
        os._exit(EXIT_STATUS)
    _started.add(os.getpid())
    threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()
    return kernel
