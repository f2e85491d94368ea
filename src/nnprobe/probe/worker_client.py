"""The front doors' side of the probe worker: start it, send a job, wait within a budget, kill it.

One worker process serves one job at a time and is reused for the next (torch and ONNX Runtime are
imported once). A job that overruns its budget gets the process killed (the only way to stop a
forward stuck in native code) and the next job starts a fresh one. Nothing here imports torch:
the CLI and the language server use it as is. The protocol is in docs/worker.md.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any

DEFAULT_STARTUP_TIMEOUT = 120.0
MEMORY_POLL = 0.1  # seconds between resident-memory checks while a job runs
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

log = logging.getLogger("nnprobe.probe.worker")


def default_memory_budget() -> int | None:
    """Three quarters of the memory available now (Linux): a probe that needs more would push
    the machine into swap or the OOM killer; None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 * 3 // 4
    except (OSError, ValueError, IndexError):
        return None
    return None


class WorkerError(Exception):
    """The worker did not answer: `timeout` or `memory` when a budget ran out (the process was
    killed), else it crashed or could not start; the message is meant for the user."""

    def __init__(self, message: str, *, timeout: bool = False, memory: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timeout = timeout
        self.memory = memory


class WorkerClient:
    def __init__(
        self,
        python: str | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
    ) -> None:
        self.python = python or sys.executable
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: IO[bytes] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._relayed = 0  # bytes of the worker's stderr already looked at by _relay

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        if self.running:
            return
        self.kill()
        import nnprobe
        from nnprobe.core.isolation import SAFE_PATH, child_environment, inherited_path

        # The worker sees what this process imports from (nnprobe itself, the folders a pickled
        # model's classes were importable from), never the working directory: it runs in the
        # user's checkout, whose numpy.py or nnprobe/ must not shadow ours (core/isolation.py).
        source_root = str(Path(nnprobe.__file__).resolve().parent.parent)
        paths = [source_root, *inherited_path(p for p in sys.path if os.path.isdir(p))]
        env = child_environment(os.environ, paths)
        env.setdefault("PYTHONUNBUFFERED", "1")
        env["ORT_DISABLE_TELEMETRY"] = "1"  # no ~/.cache/Microsoft writes, no events sent
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (open as long as the worker)
        self._relayed = 0
        self._lines = queue.Queue()
        try:
            self._process = subprocess.Popen(
                [self.python, SAFE_PATH, "-m", "nnprobe.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                text=True,
                encoding="utf-8",
                env=env,
            )
        except OSError as exc:
            self.kill()
            raise WorkerError(
                f"cannot start the probe worker with {self.python}: {exc.strerror or exc}"
            ) from None
        reader = threading.Thread(target=self._read, args=(self._process,), daemon=True)
        reader.start()
        ready = self._next(self.startup_timeout, "starting")
        if ready.get("event") != "ready":
            self.kill()
            raise WorkerError(f"the probe worker sent {ready!r} instead of its ready line")

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        lines = self._lines
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    def _next(self, timeout: float, what: str, memory_limit: int | None = None) -> dict[str, Any]:
        """The next message; kills the worker when `timeout` passes or its resident memory grows
        by more than `memory_limit` bytes over what it held when the wait began."""
        deadline = time.monotonic() + timeout
        baseline = self._rss() if memory_limit is not None else None
        while True:
            remaining = deadline - time.monotonic()
            wait = max(remaining, 0.0)
            if baseline is not None:
                wait = min(wait, MEMORY_POLL)
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                if remaining <= wait:
                    self.kill()
                    raise WorkerError(
                        f"{what} took longer than its {timeout:g} s budget and was stopped",
                        timeout=True,
                    ) from None
                rss = self._rss()
                if memory_limit is not None and baseline is not None and rss is not None:
                    if rss - baseline > memory_limit:
                        self.kill()
                        raise WorkerError(
                            f"{what} used more than its {memory_limit / 2**20:.0f} MB memory "
                            "budget and was stopped",
                            memory=True,
                        ) from None
                continue
            if line is None:
                detail = self._stderr_tail()
                ended = self._ended()
                self.kill()
                raise WorkerError(
                    f"the probe worker {ended} while {what}" + (f": {detail}" if detail else "")
                )
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                return message

    def _ended(self) -> str:
        """How the worker ended, once its output has closed: killed by which signal (SIGKILL is
        also the kernel's OOM killer), or its exit status."""
        process = self._process
        status = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                status = process.wait(timeout=5)
        if status is None:
            return "stopped answering"
        if status < 0:
            with contextlib.suppress(ValueError):
                name = signal.Signals(-status).name
                hint = " (by another process or the system's out-of-memory killer)"
                return f"was killed by {name}" + (hint if name == "SIGKILL" else "")
            return f"was killed by signal {-status}"
        return f"exited with status {status}"

    def _rss(self) -> int | None:
        """The worker's resident memory in bytes (Linux /proc; None elsewhere)."""
        process = self._process
        if process is None:
            return None
        try:
            with open(f"/proc/{process.pid}/statm", encoding="ascii") as handle:
                return int(handle.read().split()[1]) * PAGE_SIZE
        except (OSError, ValueError, IndexError):
            return None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            return lines[-1][:300] if lines else ""
        return ""

    def request(
        self,
        method: str,
        params: dict[str, Any],
        timeout: float,
        what: str = "the probe",
        memory_limit: int | None = None,
    ) -> dict[str, Any]:
        """Send one request and return its response (`result` or `error`); WorkerError when a
        budget runs out (time, or memory growth in bytes; the worker is killed) or it dies."""
        with self._lock:
            self.start()
            assert self._process is not None and self._process.stdin is not None
            rid = next(self._ids)
            try:
                request: dict[str, Any] = {"id": rid, "method": method, "params": params}
                if memory_limit is not None:  # the worker caps its address space with it
                    request["memory_limit"] = int(memory_limit)
                line = json.dumps(request)
                self._process.stdin.write(line + "\n")
                self._process.stdin.flush()
            except OSError:
                detail = self._stderr_tail()
                self.kill()
                raise WorkerError(f"the probe worker is gone: {detail}") from None
            while True:
                response = self._next(timeout, what, memory_limit)
                if response.get("id") == rid:
                    self._relay()
                    return response

    def _relay(self) -> None:
        """Log the worker's own `nnprobe: ` lines here (say, a cache folder it cannot write):
        its stderr is otherwise only read when it dies. pread leaves the shared offset alone."""
        if self._stderr is None:
            return
        with contextlib.suppress(OSError, ValueError):
            fd = self._stderr.fileno()
            size = os.fstat(fd).st_size
            data = (
                os.pread(fd, size - self._relayed, self._relayed) if size > self._relayed else b""
            )
            complete = data.rfind(b"\n") + 1
            self._relayed += complete
            for line in data[:complete].decode("utf-8", "replace").splitlines():
                if line.startswith("nnprobe: "):
                    log.warning("%s", line)

    def kill(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        if process is not None:
            for stream in (process.stdin, process.stdout):
                with contextlib.suppress(OSError, ValueError):
                    if stream is not None:
                        stream.close()
        if self._stderr is not None:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._stderr = None

    def close(self) -> None:
        """Ask the worker to exit, then make sure it has."""
        process = self._process
        if process is not None and process.poll() is None and process.stdin is not None:
            with contextlib.suppress(OSError, ValueError, subprocess.TimeoutExpired):
                process.stdin.write(json.dumps({"id": 0, "method": "shutdown"}) + "\n")
                process.stdin.flush()
                process.wait(timeout=5)
        self.kill()


_SHARED: WorkerClient | None = None


def shared_client() -> WorkerClient:
    """The process's one worker, closed at exit."""
    global _SHARED
    if _SHARED is None:
        _SHARED = WorkerClient()
        atexit.register(_SHARED.close)
    return _SHARED
