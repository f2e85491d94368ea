"""A probe job cancelled while the server's worker is still starting (a newer checkpoint arrived a
moment after the first) must not stall the next job: the start finishes and the next job uses
that worker. Before the fix, the cancel killed the worker mid-start, the start's thread read the
next worker's ready line, and the next job waited out the 120 s startup budget
(bench/load_bench.py --checkpoint-every 500 took 129 s to settle). Real worker processes."""

from __future__ import annotations

import asyncio
import time

import pytest

from nnprobe.server.probe_worker import ProbeWorker

BUDGET_S = 30.0  # well under the 120 s startup budget a stalled job waits out


async def _cancel_during_start(worker: ProbeWorker) -> tuple[int | None, dict[str, object], float]:
    first = asyncio.ensure_future(
        worker.run("ping", {}, python=None, timeout=BUDGET_S, memory_limit=None)
    )
    deadline = time.monotonic() + BUDGET_S
    while worker.pid is None:  # the worker process exists; it has not answered anything yet
        assert time.monotonic() < deadline, "the worker never started"
        await asyncio.sleep(0.005)
    starting = worker.pid
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert worker.jobs == 0  # cancelled before its request went out
    began = time.monotonic()
    response = await asyncio.wait_for(
        worker.run("ping", {}, python=None, timeout=BUDGET_S, memory_limit=None), BUDGET_S
    )
    return starting, response, time.monotonic() - began


def test_a_job_cancelled_while_the_worker_starts_leaves_it_to_the_next_job() -> None:
    worker = ProbeWorker()
    try:
        starting, response, elapsed = asyncio.run(_cancel_during_start(worker))
    finally:
        worker.kill()
    assert response.get("result") == {"pid": starting}  # the same worker, started once
    assert elapsed < BUDGET_S
