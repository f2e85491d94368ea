"""How much memory a probe took: the rise of the process's peak resident set during it.

On Linux the kernel's high-water mark (VmHWM) can be reset by writing 5 to /proc/self/clear_refs, so
the peak *during* the probe is measured exactly, without a sampling thread. Elsewhere (or where that
file is not writable) the lifetime peak from getrusage is used, which can only over-state: the
measurement then says so (`exact` is False).
"""

from __future__ import annotations

import contextlib
import sys
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
