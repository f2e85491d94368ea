"""A client that cannot watch files (no dynamic registration of didChangeWatchedFiles, like
many minimal clients): the server polls the workspace and still finds a checkpoint written into
it, and leaves virtual environments, node_modules and excluded folders alone."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

import pytest_lsp  # noqa: E402
from lsp_helpers import make_client  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities  # noqa: E402
from runtime_workspace import TRAIN, codes, idle, save_checkpoint, status  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILES = {"train.py": TRAIN, "pyproject.toml": '[tool.nnprobe]\nexclude = ["scratch/**"]\n'}
SETTINGS = {"debounce": 20, "pollInterval": 100, "trusted": True}


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "nnprobe", "serve"], client_factory=make_client
    ),
    scope="module",
)
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    root: Path = request.getfixturevalue("workspace")
    capabilities = client_capabilities("visual-studio-code")
    assert capabilities.workspace is not None
    capabilities.workspace.did_change_watched_files = None
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities, root_uri=root.as_uri(), initialization_options=SETTINGS
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_a_checkpoint_is_found_by_polling(client: LanguageClient, workspace: Path) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    for _ in range(500):  # the server decides after `initialized`, with nothing to wait on
        if (await status(client))["polling"]:
            break
        await asyncio.sleep(0.02)
    assert (await status(client))["polling"]
    assert not any(r.id == "nnprobe-checkpoints" for r in getattr(client, "registrations", []))
    skipped = [
        save_checkpoint(workspace / ".venv" / "lib" / "model.pt"),
        save_checkpoint(workspace / "node_modules" / "pkg" / "model.pt"),
        save_checkpoint(workspace / "scratch" / "model.pt"),
    ]
    checkpoint = save_checkpoint(workspace / "runs" / "ckpt_0.pt")
    published = await recorder.wait(checkpoint.as_uri(), lambda p: "NP301" in codes(p))
    assert "32 of 64" in next(d.message for d in published.diagnostics if d.code == "NP301")
    await idle(client)
    seen = {entry["uri"] for entry in (await status(client))["history"]}
    assert seen == {checkpoint.as_uri()}
    assert all(path.as_uri() not in recorder.history for path in skipped)
