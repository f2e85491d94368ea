"""Fixtures the security tests share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from nnprobe.probe.worker_client import WorkerClient


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerClient]:
    """One real probe worker per test module, as the CLI and the server run it."""
    from nnprobe.probe.worker_client import WorkerClient

    client = WorkerClient()
    yield client
    client.close()
