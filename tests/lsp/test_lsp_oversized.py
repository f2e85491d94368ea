"""A message over the framing's MAX_BODY (64 MiB) keeps the session: a didOpen of a 50 MiB file
of NULs (300 MB of JSON escapes) gets one NP901 on its document, read in bounded chunks (the
server's peak RSS stays far under 1 GB), and the document is checked again after a change of
normal size; an oversized request is answered with an error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsp_helpers import TIMEOUT_S, Document, codes
from lsprotocol import types
from pytest_lsp import LanguageClient

from nnprobe.server.framing import MAX_BODY

pytestmark = pytest.mark.asyncio(loop_scope="module")

INIT_OPTIONS = {"debounce": 50}
NULS = "\0" * (50 * 2**20)  # JSON-encodes to \u0000 each: 300 MB


async def debug_info(client: LanguageClient) -> dict[str, object]:
    return await asyncio.wait_for(  # type: ignore[no-any-return]
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nnprobe.debugInfo")
        ),
        TIMEOUT_S,
    )


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(ln for ln in status if ln.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


async def test_an_oversized_did_open_gets_np901_and_keeps_the_session(
    client: LanguageClient, workspace: Path
) -> None:
    pid = int((await debug_info(client))["pid"])  # type: ignore[call-overload]
    document = Document(client, workspace / "huge.py", NULS)
    document.open()
    published = (
        await asyncio.wait_for(
            document.recorder.wait(document.uri, lambda p: "NP901" in codes(p.diagnostics)),
            6 * TIMEOUT_S,
        )
    ).diagnostics
    assert codes(published) == ["NP901"]
    assert "300 MB, over the 2 MiB nnprobe checks" in published[0].message
    peak = peak_rss_mb(pid)
    assert peak < 400, f"peak RSS {peak:.0f} MB during a 300 MB didOpen"
    assert (await debug_info(client))["pid"] == pid  # the session goes on
    # A change of normal size is checked again: the NP901 goes, the lint's findings come.
    document.change("import torch\nx = torch.load('m.pt')\n")
    after = await document.diagnostics(lambda p: "NP901" not in codes(p.diagnostics))
    assert "NP901" not in codes(after)


async def test_an_oversized_request_is_answered_with_an_error(client: LanguageClient) -> None:
    request = client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.debugInfo", arguments=["x" * (MAX_BODY + 1)])
    )
    with pytest.raises(Exception, match="too large"):
        await asyncio.wait_for(request, 6 * TIMEOUT_S)
    assert (await debug_info(client))["pid"]  # still serving
