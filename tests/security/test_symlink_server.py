"""The language server's checkpoint watcher does not follow a link out of the workspace.

A checkpoint that appears in the workspace as a symbolic link to a hostile pickle outside it gets
NP901 saying it was not read (had it been read, the answer would be NP902), through the real
server in a subprocess and its worker; the payload never runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lsp"))

import pytest_lsp  # noqa: E402
from corpus import raw_pickle  # noqa: E402
from lsp_helpers import initialize, serve  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from runtime_workspace import changed, codes, idle  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(workspace, outside)."""
    base = tmp_path_factory.mktemp("links")
    (base / "workspace" / "runs").mkdir(parents=True)
    (base / "outside").mkdir()
    return base / "workspace", base / "outside"


@pytest_lsp.fixture(
    config=serve(),
    scope="module",
)
async def client(lsp_client: LanguageClient, places: tuple[Path, Path]):  # type: ignore[no-untyped-def]
    root = places[0]
    await initialize(lsp_client, root, {"debounce": 20, "trusted": True})
    yield
    await lsp_client.shutdown_session()


async def test_watcher_refuses_a_link_out_unread(
    client: LanguageClient, places: tuple[Path, Path]
) -> None:
    workspace, outside = places
    sentinel = outside.parent / "SENTINEL_code_ran"
    link = workspace / "runs" / "ckpt_1.pt"
    link.symlink_to(raw_pickle(4)(outside, sentinel))
    changed(client, link)
    recorder = client.recorder  # type: ignore[attr-defined]
    published = await recorder.wait(link.as_uri(), lambda p: "NP901" in codes(p))
    [diagnostic] = published.diagnostics
    assert "outside the workspace: not read" in diagnostic.message
    await idle(client)
    assert not sentinel.exists()
