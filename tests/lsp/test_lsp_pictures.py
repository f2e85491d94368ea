"""The picture commands through the real server: a trained digits CNN exported to ONNX, probe data
from the workspace config; the worker draws, the server answers payloads and never imports torch.
Each picture is saved under test-output/lsp-pictures/."""

from __future__ import annotations

import base64
import sys
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

pytestmark = pytest.mark.asyncio(loop_scope="module")
pytest.importorskip("matplotlib")

OUT = Path(__file__).resolve().parents[2] / "test-output" / "lsp-pictures"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from digits_cnn import trained, write_onnx, write_workspace

    root = tmp_path_factory.mktemp("pictures")
    model = trained()
    write_workspace(root, model)  # model.py, probe.npz, cnn.pt (a state_dict)
    write_onnx(root / "cnn.onnx", model)
    (root / "pyproject.toml").write_text(
        '[tool.nnprobe]\nprobe = "probe.npz"\n\n'
        '[tool.nnprobe.models]\n"*.pt" = "model.py:DigitsCNN"\n',
        encoding="utf-8",
    )
    return root


async def run(client: LanguageClient, command: str, *arguments: Any) -> dict[str, Any]:
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=command, arguments=list(arguments))
    )
    assert isinstance(result, dict)
    return result


def save(name: str, payload: dict[str, Any]) -> None:
    assert payload["kind"] == "image", payload
    png = base64.b64decode(payload["data"])
    assert png.startswith(b"\x89PNG")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / name).write_bytes(png)


async def test_pictures_from_the_worker(client: LanguageClient, workspace: Path) -> None:
    uri = (workspace / "cnn.onnx").as_uri()
    scatter = await run(client, "nnprobe.embeddingPreview", uri)
    assert scatter["kind"] == "scatter", scatter
    assert len(scatter["points"]) == len(scatter["labels"]) == 1797
    # The first preview of a session is PCA: UMAP is still compiling in the worker.
    assert scatter["meta"]["method"] == "pca" and scatter["meta"]["pending"] == "umap"
    assert scatter["meta"]["layer"] == "relu3" and scatter["meta"]["colour"] == "label"

    filters = await run(client, "nnprobe.filters", {"uri": uri})
    save("filters.png", filters)
    assert filters["meta"]["layer"] == "conv1" and len(filters["meta"]["scores"]) == 16

    maps = await run(client, "nnprobe.activationMaps", uri, {"layer": "relu2", "input": 7})
    save("activations.png", maps)
    assert maps["meta"] == {**maps["meta"], "layer": "relu2", "input": 7}

    top = await run(client, "nnprobe.topActivating", {"uri": uri, "unit": 4})
    save("top.png", top)
    assert top["meta"]["unit"] == 4 and len(top["meta"]["indices"]) == 9

    occlusion = await run(client, "nnprobe.occlusion", uri, {"input": 0})
    save("occlusion.png", occlusion)
    assert occlusion["meta"]["target"] == 0

    info = await run(client, "nnprobe.debugInfo")
    assert info["heavyModules"] == []


async def test_state_dict_pictures_need_trust(client: LanguageClient, workspace: Path) -> None:
    answer = await run(client, "nnprobe.filters", (workspace / "cnn.pt").as_uri())
    assert answer["kind"] == "unavailable"
    assert "model.py:DigitsCNN" in answer["reason"] and "not allowed" in answer["reason"]


async def test_bad_layer_is_unavailable_with_the_layers(
    client: LanguageClient, workspace: Path
) -> None:
    uri = (workspace / "cnn.onnx").as_uri()
    answer = await run(client, "nnprobe.activationMaps", uri, {"layer": "nope"})
    assert answer["kind"] == "unavailable" and "relu1" in answer["reason"]
