"""workspace/executeCommand payloads, and the promise that the server process stays free of torch,
numpy and onnx however it is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lsp_helpers import Document
from lsp_scripts import BUGGY, FIX_ALL
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILES = {"on_disk.py": FIX_ALL, "model.pt": "not really a checkpoint"}
PICTURES = [
    "nnprobe.embeddingPreview",
    "nnprobe.filters",
    "nnprobe.activationMaps",
    "nnprobe.occlusion",
    "nnprobe.topActivating",
]


async def execute(client: LanguageClient, command: str, *arguments: Any) -> Any:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=list(arguments))
    )


async def test_every_command_is_advertised(client: LanguageClient) -> None:
    result: types.InitializeResult = client.initialize_result  # type: ignore[attr-defined]
    provider = result.capabilities.execute_command_provider
    assert provider is not None
    assert {"nnprobe.inspect", *PICTURES} <= set(provider.commands)


async def test_inspect_an_open_script_returns_the_cli_json(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "open.py", BUGGY)
    document.open()
    await document.diagnostics()
    result = await execute(client, "nnprobe.inspect", document.uri)

    # The buffer is not saved: write it for the CLI, which reads the disk.
    (workspace / "open.py").write_text(BUGGY)
    cli = subprocess.run(
        [sys.executable, "-m", "nnprobe", "inspect", "--output-format", "json", "open.py"],
        cwd=workspace,
        capture_output=True,
        text=True,
        check=False,
    )
    expected = json.loads(cli.stdout)
    assert result["kind"] == "findings"
    assert result["uri"] == document.uri
    assert result["version"] == expected["version"]
    assert result["findings"] == expected["findings"]
    assert result["summary"] == expected["summary"]
    assert [f["code"] for f in result["findings"]] == ["NP104"]


async def test_inspect_a_closed_script_reads_the_disk(
    client: LanguageClient, workspace: Path
) -> None:
    result = await execute(client, "nnprobe.inspect", {"uri": (workspace / "on_disk.py").as_uri()})
    assert result["kind"] == "findings"
    assert sorted(f["code"] for f in result["findings"]) == ["NP104", "NP104", "NP120", "NP122"]
    fixable = [f for f in result["findings"] if f["fix"]]
    assert all(f["fix"]["edits"][0]["range"]["start"]["line"] >= 1 for f in fixable)


async def test_inspect_a_broken_checkpoint_reports_why(
    client: LanguageClient, workspace: Path
) -> None:
    result = await execute(client, "nnprobe.inspect", (workspace / "model.pt").as_uri())
    assert result["kind"] == "findings"
    assert [f["code"] for f in result["findings"]] == ["NP901"]


@pytest.mark.parametrize("command", PICTURES)
async def test_picture_commands_answer_unavailable(
    client: LanguageClient, workspace: Path, command: str
) -> None:
    # The picture worker cannot read the file: an answer that says why, not an error.
    result = await execute(client, command, (workspace / "model.pt").as_uri())
    assert result == {"kind": "unavailable", "reason": result["reason"]}
    assert result["reason"].startswith("NP901: not a PyTorch checkpoint")


async def test_a_command_without_a_uri_is_invalid_params(client: LanguageClient) -> None:
    with pytest.raises(Exception, match="expects a file URI"):
        await execute(client, "nnprobe.inspect")


async def test_the_running_server_never_imported_torch(client: LanguageClient) -> None:
    info = await execute(client, "nnprobe.debugInfo")
    assert info["heavyModules"] == []
    assert info["positionEncoding"] == "utf-16"
    assert info["openDocuments"] >= 1  # it has linted and inspected by now
