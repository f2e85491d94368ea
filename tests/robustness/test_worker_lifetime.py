"""The probe worker lives as long as the process that started it, not the thread.

The language server and the CLI start the worker from whatever thread needs it first; when that
thread ends, the worker must keep serving (a kernel parent-death signal tied to the starting
thread once killed it at once, and every runtime diagnostic in the editor timed out)."""

from __future__ import annotations

import threading

from nnprobe.probe.worker_client import WorkerClient


def test_worker_outlives_the_thread_that_started_it() -> None:
    client = WorkerClient()
    try:
        starter = threading.Thread(target=client.start)
        starter.start()
        starter.join()
        pid = client.pid
        assert pid is not None
        # a job from another thread, after the starter is gone
        assert client.request("ping", {}, timeout=60)["result"]["pid"] == pid
        assert client.pid == pid
    finally:
        client.close()
