"""The picture commands (`nnprobe.embeddingPreview`, `nnprobe.filters`, `nnprobe.activationMaps`,
`nnprobe.occlusion`, `nnprobe.topActivating`): the worker draws them, this adapts the protocol.

Pictures get their own long-lived worker, separate from the one that inspects checkpoints, so a
cancelled inspection never kills the UMAP it has warmed: the first picture request starts it and
then asks it to compile UMAP in a background thread (20-60 s of numba). Until that is done the
embedding preview answers with PCA and says so in `meta.pending`; asking again later gets UMAP.

Arguments: the checkpoint's URI (bare or {"uri": ...}), then optionally {"layer", "unit", "input",
"method", "k"}; the options may also sit in the first argument's object beside "uri".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from nnprobe.server import payloads
from nnprobe.server.probe_worker import ProbeWorker, WorkerError

if TYPE_CHECKING:
    from nnprobe.server.app import NnprobeServer

log = logging.getLogger("nnprobe.server.pictures")

COMMANDS = {
    "nnprobe.embeddingPreview": "embed",
    "nnprobe.filters": "filters",
    "nnprobe.activationMaps": "activations",
    "nnprobe.occlusion": "occlusion",
    "nnprobe.topActivating": "top",
}
OPTIONS = ("layer", "unit", "input", "method", "k")


def options_of(args: tuple[Any, ...]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for arg in args[:2]:
        if isinstance(arg, dict):
            merged.update({k: arg[k] for k in OPTIONS if arg.get(k) is not None})
    return merged


class Pictures:
    def __init__(self, server: NnprobeServer) -> None:
        self.server = server
        self.worker = ProbeWorker()
        self._warm: asyncio.Task[None] | None = None

    async def answer(self, command: str, args: tuple[Any, ...]) -> dict[str, Any]:
        from nnprobe.server.features.commands import uri_argument
        from nnprobe.visuals.params import PictureError, picture_params

        uri = uri_argument(command, args)
        path = self.server.path_of(uri)
        if path is None or not path.is_file():
            return payloads.unavailable(f"{command} needs the file: URI of a checkpoint")
        await self.server.ready.wait()
        config = dataclasses.replace(
            self.server.configs.config_for(path), trusted=self.server.settings.trusted
        )
        try:
            params = picture_params(
                path, config, COMMANDS[command], self.server.display_path(uri), **options_of(args)
            )
        except PictureError as exc:
            return payloads.unavailable(str(exc))
        response = await self._request("picture", params, config.probe_timeout)
        if self._warm is None:
            self._warm = asyncio.ensure_future(self._warm_umap())
        if "error" in response:
            error = response["error"]
            return payloads.unavailable(f"{error.get('code', 'NP907')}: {error.get('message')}")
        result: dict[str, Any] = response.get("result", {})
        return result

    async def _request(self, method: str, params: dict[str, Any], timeout: float) -> dict[str, Any]:
        from nnprobe.probe.worker_client import default_memory_budget

        try:
            return await self.worker.run(
                method,
                params,
                python=self.server.settings.interpreter,
                timeout=timeout,
                memory_limit=default_memory_budget(),
            )
        except WorkerError as exc:
            return {"error": {"code": "NP904", "message": exc.message}}

    async def _warm_umap(self) -> None:
        response = await self._request("warm", {"umap": True}, 30.0)
        log.info("UMAP warm-up in the picture worker: %s", response)


def register(server: NnprobeServer) -> None:
    pictures = Pictures(server)
    for command in COMMANDS:
        server.runtime_commands[command] = _handler(pictures, command)


def _handler(pictures: Pictures, command: str) -> Any:
    async def handle(server: NnprobeServer, args: tuple[Any, ...]) -> dict[str, Any]:
        return await pictures.answer(command, args)

    return handle
