"""End-to-end fixtures: the real `nnprobe serve` in a subprocess, driven by pytest-lsp's client
with VS Code's capabilities, one server per test module (about 1 s each to start).

A module sets INIT_OPTIONS (initializationOptions) and FILES (workspace files written before the
server starts) to shape its server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsp_helpers import initialize, serve
from pytest_lsp import LanguageClient

SERVER = serve()


@pytest.fixture(scope="module")
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workspace")
    for name, text in getattr(request.module, "FILES", {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest_lsp.fixture(config=SERVER, scope="module")
async def client(lsp_client: LanguageClient, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    root: Path = request.getfixturevalue("workspace")
    options = getattr(request.module, "INIT_OPTIONS", {"debounce": 50})
    lsp_client.initialize_result = await initialize(lsp_client, root, options)  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()
