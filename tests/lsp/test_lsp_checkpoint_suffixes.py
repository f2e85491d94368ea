"""The server and the VS Code extension take their checkpoint suffixes from the one list
(nnprobe.core.files.CHECKPOINT_SUFFIXES): `nnprobe.inspect` on a `.bin` checkpoint inspects it
(an untrusted workspace's TorchScript `.bin` is refused unrun, NP902), the watcher and the
extension's activation and file pickers see `.bin` files."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from lsp_helpers import TIMEOUT_S
from lsprotocol import types
from pytest_lsp import LanguageClient

from nnprobe.core.files import CHECKPOINT_SUFFIXES
from nnprobe.server import checkpoint_watch

INIT_OPTIONS = {"debounce": 50, "progressDelay": 0, "trusted": False, "probeTimeout": 60}
EXTENSION = Path(__file__).resolve().parents[2] / "client-vscode"


def test_the_watcher_watches_every_checkpoint_suffix() -> None:
    assert ".bin" in CHECKPOINT_SUFFIXES
    for suffix in CHECKPOINT_SUFFIXES:
        assert checkpoint_watch.is_checkpoint(Path("runs") / f"model{suffix.upper()}")
        assert suffix.lstrip(".") in checkpoint_watch.GLOB


def test_the_extension_uses_the_servers_glob() -> None:
    constants = (EXTENSION / "src" / "constants.ts").read_text(encoding="utf-8")
    found = re.search(r'CHECKPOINT_GLOB = "([^"]+)"', constants)
    assert found is not None and found.group(1) == checkpoint_watch.GLOB
    manifest = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    assert f"workspaceContains:{checkpoint_watch.GLOB}" in manifest["activationEvents"]


@pytest.mark.asyncio(loop_scope="module")
async def test_inspect_refuses_an_untrusted_torchscript_bin(
    client: LanguageClient, workspace: Path
) -> None:
    torch = pytest.importorskip("torch")
    sentinel = workspace / "ran"

    class Writes(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)
            self.sentinel = str(sentinel)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            torch.save(x, self.sentinel)
            return self.fc(x)

    model = workspace / "model.bin"
    torch.jit.script(Writes()).save(str(model))
    payload = await asyncio.wait_for(
        client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nnprobe.inspect", arguments=[model.as_uri()])
        ),
        3 * TIMEOUT_S,
    )
    assert payload["kind"] == "findings", payload
    refused = [f for f in payload["findings"] if f["code"] == "NP902"]
    assert refused and "TorchScript" in refused[0]["message"], payload["findings"]
    assert not sentinel.exists()
