"""`nnprobe.inspect` on a checkpoint is always answered: when the watcher's event for the same
file supersedes the request's inspection (the file was just saved: the client reports it and the
user asks at once), the request waits for that newer inspection and answers its findings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest.importorskip("torch")

from lsp_helpers import TIMEOUT_S  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from runtime_workspace import FILES, changed, save_checkpoint  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")

INIT_OPTIONS = {"debounce": 50, "progressDelay": 0, "trusted": False, "probeTimeout": 60}
__all__ = ["FILES", "INIT_OPTIONS"]


async def inspect(client: LanguageClient, uri: str) -> dict[str, object]:
    request = client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.inspect", arguments=[uri])
    )
    return await asyncio.wait_for(request, 3 * TIMEOUT_S)  # type: ignore[no-any-return]


async def test_inspect_right_after_the_watcher_reports_the_file_is_answered(
    client: LanguageClient, workspace: Path
) -> None:
    checkpoint = save_checkpoint(workspace / "runs" / "ckpt_0.pt")
    changed(client, checkpoint)  # the watcher's job supersedes the request's
    payload = await inspect(client, checkpoint.as_uri())
    assert payload["kind"] == "findings", payload
    found = {(f["code"], Path(f["path"]).name) for f in payload["findings"]}  # type: ignore[attr-defined]
    assert ("NP905", "ckpt_0.pt") in found  # untrusted: weights read, nothing imported


async def test_two_requests_for_one_file_are_both_answered(
    client: LanguageClient, workspace: Path
) -> None:
    uri = (workspace / "runs" / "ckpt_0.pt").as_uri()
    first, second = await asyncio.gather(inspect(client, uri), inspect(client, uri))
    assert first["kind"] == second["kind"] == "findings"
    assert first["findings"] == second["findings"]
