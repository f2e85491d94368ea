"""The language server's probe worker: one `python -m nnprobe.worker` in the user's interpreter,
started on the first job, one job at a time, killed to cancel a job or when a budget runs out.

The blocking WorkerClient (shared with the CLI) runs in a thread so the event loop keeps
answering; a cancelled job kills the process, because nothing else stops a forward stuck in native
code, and the next job starts a fresh one. A job cancelled while the worker is still starting
leaves the start to finish for the next job: killing it mid-start left the start's thread reading
the next worker's lines (it took that worker's ready line, and the next job waited out the 120 s
startup budget: bench/load_bench.py --checkpoint-every 500). Nothing starts a worker while
another thread still talks to the last one.

A request that is merely superseded (a newer checkpoint of the same run arrived) is not killed by
this class: the server lets it finish (`owner` and `sent_at` say whose request is in flight and
since when) and decides itself when it has run too long (features/runtime.py).

`kill_all` ends every worker the server started, at shutdown; a worker also ends by itself when
the server dies (core/lifetime.py). The traceback of a job that crashed in the worker (NP907) is
logged here, to the server's stderr, and taken out of the response: nothing downstream can pass it
on to the client.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import time
import weakref
from typing import Any

from nnprobe.probe.worker_client import WorkerClient, WorkerError

log = logging.getLogger("nnprobe.server.worker")
_ALL: weakref.WeakSet[ProbeWorker] = weakref.WeakSet()

__all__ = ["ProbeWorker", "WorkerError"]


class ProbeWorker:
    def __init__(self) -> None:
        self._client: WorkerClient | None = None
        self._lock = asyncio.Lock()
        # The thread of the last request: after a cancel it runs on until it sees the killed
        # worker's end of stream, and the next job must not start a worker before that.
        self._inflight: asyncio.Future[dict[str, Any]] | None = None
        self._starting: asyncio.Future[None] | None = None  # a start under way in its thread
        self.jobs = 0  # jobs sent, for the status command and the tests
        self.owner: object | None = None  # whose request is in the worker now
        self.sent_at = 0.0  # time.monotonic() when that request went out
        # A worker stuck in a job would outlive the server: its stdin closes only when it reads.
        atexit.register(self.kill)
        _ALL.add(self)

    @property
    def pid(self) -> int | None:
        return self._client.pid if self._client is not None else None

    @property
    def running(self) -> bool:
        return self._client is not None and self._client.running

    @property
    def busy(self) -> bool:
        return self._lock.locked()

    def _client_for(self, python: str | None) -> WorkerClient:
        python = python or sys.executable
        if self._client is not None and self._client.python != python:
            log.info("interpreter changed to %s: the probe worker restarts", python)
            self._client.kill()
            self._client = None
        if self._client is None:
            self._client = WorkerClient(python)
        return self._client

    async def start(self, python: str | None) -> None:
        """Start the worker if it is not running (its startup is not charged to any job). A
        cancelled caller stops waiting, not the start."""
        for busy in (self._starting, self._inflight):
            if busy is not None and not busy.done():
                await asyncio.wait([busy])
        client = self._client_for(python)
        if not client.running:
            log.info("starting the probe worker (%s)", client.python)
            self._starting = asyncio.ensure_future(asyncio.to_thread(client.start))
            self._starting.add_done_callback(_consume)
            await asyncio.shield(self._starting)

    async def run(
        self,
        method: str,
        params: dict[str, Any],
        *,
        python: str | None,
        timeout: float,
        memory_limit: int | None,
        owner: object | None = None,
    ) -> dict[str, Any]:
        """The worker's response (`result` or `error`). WorkerError when it crashed or overran a
        budget (it was killed); cancelling the caller kills a job in flight. `owner` is who
        `self.owner` names while the request is in the worker."""
        async with self._lock:
            if self._inflight is not None:
                await asyncio.wait([self._inflight])
            await self.start(python)
            client = self._client_for(python)
            try:
                self.jobs += 1
                self.owner, self.sent_at = owner, time.monotonic()
                self._inflight = asyncio.ensure_future(
                    asyncio.to_thread(
                        client.request, method, params, timeout, "the inspection", memory_limit
                    )
                )
                self._inflight.add_done_callback(_consume)
                return _without_traceback(method, await asyncio.shield(self._inflight))
            except asyncio.CancelledError:
                log.info("a probe job was cancelled: stopping the worker")
                client.kill()
                raise
            finally:
                self.owner = None

    def kill(self) -> None:
        if self._client is not None:
            self._client.kill()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def kill_all() -> None:
    """Kill every probe worker of this process (the server is shutting down)."""
    for worker in list(_ALL):
        worker.kill()


def _without_traceback(method: str, response: dict[str, Any]) -> dict[str, Any]:
    error = response.get("error")
    if isinstance(error, dict) and "traceback" in error:
        error = dict(error)
        trace = error.pop("traceback")
        # The server's stderr is its own log; the client's log is window/logMessage.
        sys.stderr.write(f"nnprobe: the worker's {method} job crashed:\n{trace}\n")
        response = {**response, "error": error}
    return response


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a result nobody awaits any more (a cancelled job's), so asyncio does not log it."""
    if not future.cancelled():
        future.exception()
