"""Whether nnprobe may run code that is not its own: one decision for every front door and job.

Two things run foreign code: importing workspace Python (a model factory, a probe callable) and
unpickling a checkpoint that holds more than tensors (the file names the code). Both need a
trusted run; unpickling also needs the opt-in `allow-pickle`. A repository's own config may ask
for `allow-pickle`, but the ask counts only in a trusted run, so a pull request from a fork cannot
opt itself in: CI runs such checkouts with `--untrusted` (or NNPROBE_UNTRUSTED=1).

The decision is made twice, so a bug in one layer is not enough to run code:
- front doors settle their Config (`settle`): untrusted means no factory or probe callable is sent
  and `allow_pickle` is false, whatever a config file or the editor said;
- the process doing the work refuses while an untrusted job runs (`guard`): the loader never
  unpickles and workspace_import never imports, whatever the job's other params say. A worker job
  is untrusted unless its params say `"trusted": true`, and NNPROBE_UNTRUSTED=1 in a process's
  environment makes everything it runs untrusted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from nnprobe.core.config import Config

ENV = "NNPROBE_UNTRUSTED"
# Every way a run becomes untrusted, for messages that tell the user why something was refused.
UNTRUSTED_WAYS = "--untrusted, NNPROBE_UNTRUSTED=1, --no-import, or an untrusted editor workspace"
REFUSED_PICKLE = (
    f"but this run is untrusted ({UNTRUSTED_WAYS}): nothing is unpickled and allow-pickle is "
    "ignored"
)

_lock = threading.Lock()
# Untrusted jobs running in this process. A count, not a context variable: threads a job starts
# do not inherit context variables, and a guard must fail closed there too.
_untrusted = 0


def env_untrusted(environ: Mapping[str, str] | None = None) -> bool:
    """NNPROBE_UNTRUSTED set to anything but empty, 0, false or no."""
    value = (os.environ if environ is None else environ).get(ENV, "")
    return value.strip().lower() not in ("", "0", "false", "no")


def may_unpickle(config: Config) -> bool:
    """The config asked for pickles and the run is trusted."""
    return config.trusted and config.allow_pickle


def settle(config: Config) -> Config:
    """The config with every ask that needs trust dropped when the run is untrusted."""
    config.allow_pickle = may_unpickle(config)
    return config


def job_trusted(params: Mapping[str, Any]) -> bool:
    """A worker job is trusted only when it says so in as many words."""
    return params.get("trusted") is True


def code_allowed() -> bool:
    """Whether this process may import workspace code or unpickle now."""
    return _untrusted == 0 and not env_untrusted()


@contextmanager
def guard(trusted: bool) -> Iterator[None]:
    """While inside, an untrusted run's process refuses to unpickle or import workspace code."""
    global _untrusted
    if trusted:
        yield
        return
    with _lock:
        _untrusted += 1
    try:
        yield
    finally:
        with _lock:
            _untrusted -= 1


class UntrustedCode(Exception):
    """Workspace code was about to run in an untrusted run."""


def require_code_allowed(what: str) -> None:
    if not code_allowed():
        raise UntrustedCode(f"{what} is not allowed: this run is untrusted ({UNTRUSTED_WAYS})")
