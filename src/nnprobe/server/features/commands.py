"""workspace/executeCommand: `nnprobe.inspect` and the picture commands.

Every command answers one of the payloads of payloads.py. Inspecting a training script runs the
static rules here; checkpoints and pictures need the probe worker, which plugs in by setting
`server.runtime_commands[command_id]` to an async callable (server, args) -> payload. Until it
does, they answer {"kind": "unavailable", "reason": ...}: never made-up data.

Arguments: a file URI, bare or as {"uri": ...}; the picture commands may add options after it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pygls.exceptions import JsonRpcInvalidParams

import nnprobe
from nnprobe.core.files import CHECKPOINT_SUFFIXES  # the one list
from nnprobe.server import lint_process, payloads

# A runtime import: pygls resolves command handlers' annotations to convert their arguments.
from nnprobe.server.app import NnprobeServer

INSPECT = "nnprobe.inspect"
DEBUG_INFO = "nnprobe.debugInfo"
PICTURES = {
    "nnprobe.embeddingPreview": "the embedding preview",
    "nnprobe.filters": "first-layer filters",
    "nnprobe.activationMaps": "activation maps",
    "nnprobe.occlusion": "occlusion maps",
    "nnprobe.topActivating": "top-activating inputs",
    "nnprobe.curves": "training curves",  # answered by features/training_logs.py
}
HEAVY_MODULES = ("torch", "numpy", "onnx", "onnxruntime", "safetensors", "scipy", "matplotlib")

NOT_YET = "the probe worker, which this version of the nnprobe server does not run yet"


def uri_argument(command: str, args: tuple[Any, ...]) -> str:
    first = args[0] if args else None
    if isinstance(first, dict):
        first = first.get("uri")
    if not isinstance(first, str) or not first:
        raise JsonRpcInvalidParams(f"{command} expects a file URI as its first argument")
    return first


async def inspect(server: NnprobeServer, args: tuple[Any, ...]) -> dict[str, Any]:
    uri = uri_argument(INSPECT, args)
    suffix = Path(uri.split("?", 1)[0]).suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        runtime = server.runtime_commands.get(INSPECT)
        if runtime is not None:
            return await runtime(server, args)
        return payloads.unavailable(f"inspecting a checkpoint ({suffix}) needs {NOT_YET}")
    document = server.open_document(uri)
    if suffix != ".py" and document is None:
        return payloads.unavailable(
            f"nnprobe inspects training scripts (.py) and checkpoints; {uri} is neither"
        )
    await server.ready.wait()
    path = server.path_of(uri)
    report = await server.linter.pool.run(
        lint_process.inspect_script,
        document.source if document is not None else None,
        path,
        server.display_path(uri),
        server.configs.config_for(path),
    )
    return payloads.findings(uri, report)


async def picture(server: NnprobeServer, command: str, args: tuple[Any, ...]) -> dict[str, Any]:
    uri_argument(command, args)
    runtime = server.runtime_commands.get(command)
    if runtime is not None:
        return await runtime(server, args)
    return payloads.unavailable(f"{PICTURES[command]} need {NOT_YET}")


def debug_info(server: NnprobeServer) -> dict[str, Any]:
    """What a bug report needs, and what the tests check: the server never loads torch."""
    loaded = sorted(name for name in HEAVY_MODULES if name in sys.modules)
    return {
        "version": nnprobe.__version__,
        "python": sys.executable,
        "pid": os.getpid(),
        "root": str(server.root) if server.root else None,
        "positionEncoding": server.position_encoding,
        "settings": server.settings.to_dict(),
        "openDocuments": len(server.open_uris()),
        "lintPid": server.linter.pool.pid,
        "heavyModules": loaded,
        "pendingMessages": getattr(server.protocol, "pending_messages", None),
    }


def register(server: NnprobeServer) -> None:
    @server.command(INSPECT)
    async def inspect_command(ls: NnprobeServer, *args: Any) -> dict[str, Any]:
        return await inspect(ls, args)

    for command in PICTURES:
        _register_picture(server, command)

    @server.command(DEBUG_INFO)
    def debug_info_command(ls: NnprobeServer, *args: Any) -> dict[str, Any]:
        return debug_info(ls)


def _register_picture(server: NnprobeServer, command: str) -> None:
    @server.command(command)
    async def picture_command(ls: NnprobeServer, *args: Any) -> dict[str, Any]:
        return await picture(ls, command, args)
