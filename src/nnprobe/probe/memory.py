"""How much memory a probe took (the rise of the process's peak resident set during it), and the
hard limit on how much it may take.

On Linux the kernel's high-water mark (VmHWM) can be reset by writing 5 to /proc/self/clear_refs, so
the peak *during* the probe is measured exactly, without a sampling thread. Elsewhere (or where that
file is not writable) the lifetime peak from getrusage is used, which can only over-state: the
measurement then says so (`exact` is False).

The front door polls the worker's resident memory and kills it past the job's budget, but a poll
every 0.1 s cannot stop one huge allocation before the kernel's OOM killer does (and it may pick
the editor). So the worker also caps its own address space for the job (`address_space_limit`):
an allocation past the cap fails at once, inside the job, as MemoryError or torch's "can't
allocate memory", which `out_of_memory` recognises so the job reports NP904 and the worker lives.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss() -> int | None:
    """Resident set size in bytes, where the platform tells."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def _lifetime_peak() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


@dataclass
class PeakMemory:
    """Context manager: `delta` is the peak RSS during the block minus the RSS before it (bytes)."""

    start: int | None = None
    peak: int | None = None
    exact: bool = False

    def __enter__(self) -> PeakMemory:
        self.start = current_rss()
        try:
            _CLEAR_REFS.write_text("5")
            self.exact = self.start is not None
        except OSError:
            self.exact = False
        if self.start is None:
            self.start = _lifetime_peak()
        return self

    def __exit__(self, *exc: object) -> None:
        hwm = _status_kib("VmHWM") if self.exact else None
        if hwm is not None:
            self.peak = hwm * 1024
        else:
            with contextlib.suppress(Exception):
                self.peak = _lifetime_peak()

    @property
    def delta(self) -> int | None:
        if self.start is None or self.peak is None:
            return None
        return max(0, self.peak - self.start)


# Address space a job may reserve beyond its memory budget without using it: glibc reserves up to
# 64 MiB per thread arena and every new thread (ONNX Runtime's and torch's pools, one per core)
# an 8 MiB stack, none of it resident. The resident budget itself is the front door's to enforce.
ADDRESS_SPACE_SLACK = 2**30

_OOM_TEXT = re.compile(
    r"can't allocate memory|not enough memory|out of memory|failed to allocate|bad_alloc",
    re.IGNORECASE,
)
_TRIED = re.compile(r"tried to allocate (\d+) bytes")


@contextlib.contextmanager
def address_space_limit(budget: object, mapped: object = None) -> Iterator[int | None]:
    """Cap the process's address space at what it maps now plus `budget` bytes (plus
    ADDRESS_SPACE_SLACK, plus the size of the file `mapped`: a checkpoint is memory-mapped, which
    takes address space but not memory) for the block, then restore the previous cap; yields
    the cap in bytes, or None where there is nothing to set (no budget, or not Linux)."""
    size = _status_kib("VmSize")
    try:
        import resource
    except ImportError:
        size = None
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0 or size is None:
        yield None
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size * 1024 + budget + ADDRESS_SPACE_SLACK
    if isinstance(mapped, str):
        with contextlib.suppress(OSError):
            cap += os.path.getsize(mapped)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield cap
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def out_of_memory(exc: BaseException) -> str | None:
    """What ran out, when `exc` (or an exception it was raised from or while handling) is an
    allocation failure: MemoryError, or torch's / ONNX Runtime's allocator error; else None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = str(current)
        if isinstance(current, MemoryError) or _OOM_TEXT.search(text):
            tried = _TRIED.search(text)
            if tried:
                return f"an allocation of {int(tried.group(1)) / 2**30:.1f} GiB was refused"
            return "an allocation was refused"
        current = current.__cause__ or current.__context__
    return None
