"""A one-line progress note on stderr while a probe runs, for a person watching a terminal.

Shown only when stderr is a TTY and the work has taken more than a moment (so fast runs and
every pipe, CI log and test stay clean); erased when the work ends. A plain carriage-return line
is enough, and costs no dependency.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import TextIO

DELAY = 0.5
INTERVAL = 0.25


class Progress:
    def __init__(self, label: str, stream: TextIO | None = None, delay: float = DELAY) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def _tty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):
            return False

    def __enter__(self) -> Progress:
        if self._tty():
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        if self._stop.wait(self.delay):
            return
        spinner = "|/-\\"
        tick = 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - start
            line = f"\rnnprobe: {self.label} {spinner[tick % 4]} {elapsed:.0f}s"
            self._width = max(self._width, len(line))
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                return
            tick += 1
            self._stop.wait(INTERVAL)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            if self._width:
                try:
                    self.stream.write("\r" + " " * self._width + "\r")
                    self.stream.flush()
                except (OSError, ValueError):
                    pass
