"""The language server places findings without reading what it does not need (issue 12, item 4):
the real `nnprobe serve` in a subprocess, driven by pytest-lsp, hovered every 100 ms throughout.

It used to read every log or checkpoint it published diagnostics for, whole, as text, to convert
positions: `metrics.csv -> /dev/zero` took it to 21 GB, a benign 300 MB checkpoint from 57 MB to
2.6 GB. Here a 6 GiB sparse checkpoint and a metrics.csv linked to /dev/zero get their NP901 on
line 0, a 7 MB log its NP501 on the very line of its NaN, while the server's peak RSS (VmHWM)
stays small and hovers keep answering (p99 under 100 ms). The server is killed, and the test
fails, if its RSS ever passes 1 GiB, so a regression cannot take the machine down.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lsp"))

import pytest_lsp  # noqa: E402
from lsp_helpers import Document, initialize, serve  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from runtime_workspace import changed, codes  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")
GiB = 2**30
MiB = 2**20
SCRIPT = "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n    pass\n"
ROWS = 300_000  # about 7 MB of metrics, the NaN on the last row
SERVER_PEAK = 256 * MiB  # the server starts at about 60 MB
HOVER_P99_S = 0.100
PUBLISH_S = 120.0


def write_log(path: Path) -> int:
    """A CSV log whose loss turns NaN on its last row; the 1-based line of that row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("epoch,train_loss\n")
        handle.writelines(f"{i},{1.0 / (i + 1):.6f}\n" for i in range(ROWS - 1))
        handle.write(f"{ROWS - 1},nan\n")
    return ROWS + 1


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("positions") / "workspace"
    (root / "runs").mkdir(parents=True)
    (root / "train.py").write_text(SCRIPT, encoding="utf-8")
    checkpoint = root / "runs" / "huge.pt"
    with checkpoint.open("wb") as handle:
        handle.truncate(6 * GiB)
    device = root / "logs" / "zero" / "metrics.csv"
    device.parent.mkdir(parents=True)
    device.symlink_to("/dev/zero")
    log = root / "logs" / "long" / "metrics.csv"
    return {
        "root": root,
        "checkpoint": checkpoint,
        "device": device,
        "log": log,
        "nan_line": write_log(log),
    }


@pytest_lsp.fixture(
    config=serve(),
    scope="module",
)
async def client(lsp_client: LanguageClient, workspace: dict[str, Any]):  # type: ignore[no-untyped-def]
    root = workspace["root"]
    await initialize(lsp_client, root, {"debounce": 20})
    yield
    await lsp_client.shutdown_session()


async def publish_on(recorder: Any, path: Path, predicate: Any, killed: asyncio.Event) -> Any:
    """The publish on `path` that matches (the worker's first start, torch, can take a while);
    AssertionError as soon as the watchdog had to kill the server."""
    latest = recorder.latest(path.as_uri())
    if latest is not None and predicate(latest):
        return latest
    expected = recorder.expect(path.as_uri(), predicate)
    stop = asyncio.ensure_future(killed.wait())
    await asyncio.wait({expected, stop}, timeout=PUBLISH_S, return_when=asyncio.FIRST_COMPLETED)
    stop.cancel()
    if killed.is_set():
        raise AssertionError(f"the server passed 1 GiB reading for {path.name} and was killed")
    if not expected.done():
        raise AssertionError(f"nothing published on {path.name} in {PUBLISH_S:.0f} s")
    return expected.result()


def any_diagnostic(params: types.PublishDiagnosticsParams) -> bool:
    return bool(params.diagnostics)


def memory(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


async def test_publishing_reads_nothing_it_does_not_need_and_hovers_keep_answering(
    client: LanguageClient, workspace: dict[str, Any]
) -> None:
    info = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.debugInfo", arguments=[])
    )
    pid = int(info["pid"])
    document = Document(client, workspace["root"] / "train.py", SCRIPT)
    document.open()
    await document.diagnostics()
    latencies: list[float] = []
    watched: dict[str, int] = {"peak": 0}
    done, killed = asyncio.Event(), asyncio.Event()

    async def watch() -> None:
        while not done.is_set():
            rss = memory(pid, "VmRSS")
            watched["peak"] = max(watched["peak"], rss)
            if rss > GiB:  # a regression: stop it before it takes the machine
                os.kill(pid, signal.SIGKILL)
                killed.set()
                return
            await asyncio.sleep(0.02)

    async def hover_every_100_ms() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.wait_for(
                client.text_document_hover_async(
                    types.HoverParams(
                        text_document=types.TextDocumentIdentifier(uri=document.uri),
                        position=types.Position(line=4, character=7),
                    )
                ),
                10,
            )
            latencies.append(time.perf_counter() - start)
            await asyncio.sleep(0.1)

    watching = asyncio.ensure_future(watch())
    hovering = asyncio.ensure_future(hover_every_100_ms())
    recorder = client.recorder  # type: ignore[attr-defined]
    checkpoint, device, log = workspace["checkpoint"], workspace["device"], workspace["log"]
    changed(client, checkpoint, device, log)
    try:
        on_checkpoint = await publish_on(recorder, checkpoint, any_diagnostic, killed)
        on_device = await publish_on(recorder, device, any_diagnostic, killed)
        on_log = await publish_on(recorder, log, lambda p: "NP501" in codes(p), killed)
        while len(latencies) < 30:  # at least 3 s of hovers, whatever the publishes took
            await asyncio.sleep(0.1)
    finally:
        done.set()
        await watching
        if not killed.is_set():
            await hovering  # its last hover is answered (or timed out, which fails the test)

    assert codes(on_checkpoint) == {"NP901"}
    assert codes(on_device) == {"NP901"}
    for published in (on_checkpoint, on_device):
        [diagnostic] = published.diagnostics
        assert diagnostic.range.start == types.Position(line=0, character=0)
    [nan] = [d for d in on_log.diagnostics if d.code == "NP501"]
    assert nan.range.start == types.Position(line=workspace["nan_line"] - 1, character=0)
    assert nan.range.end == types.Position(line=workspace["nan_line"] - 1, character=1)

    peak = memory(pid, "VmHWM")
    assert peak < SERVER_PEAK, f"server VmHWM {peak / MiB:.0f} MiB"
    ordered = sorted(latencies)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    print(
        f"\nserver VmHWM {peak / MiB:.0f} MiB; {len(latencies)} hovers, "
        f"median {ordered[len(ordered) // 2] * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )
    assert p99 < HOVER_P99_S, f"hover p99 {p99 * 1000:.0f} ms"
