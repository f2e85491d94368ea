"""Training logs in the editor: watch the log files a running job writes (`**/metrics.csv`,
`**/*.jsonl`, `**/events.out.tfevents.*`, or `[tool.nnprobe.logs] patterns`), re-read each one
incrementally after a pause (`debounce`) when it changes, and publish its NP5xx findings on the log
and on the training script's optimizer or epoch-loop line. Also answers `nnprobe.curves`.

It plugs into the server through its runtime API only: `watched_file_listeners` for the file
events, `settings_listeners` to register the watcher once the client is initialised, and
`runtime_commands` for the picture. The reading runs in the lint process (log_process.py).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from lsprotocol import types
from pygls.uris import from_fs_path

from nnprobe.server import log_process, payloads
from nnprobe.server.settings import Settings

if TYPE_CHECKING:
    from nnprobe.server.app import NnprobeServer

log = logging.getLogger("nnprobe.server.logs")

SOURCE = "nnprobe.logs"
CURVES = "nnprobe.curves"
WATCH_ID = "nnprobe-log-files"
DEFAULT_PATTERNS = ("**/metrics.csv", "**/*.jsonl", "**/events.out.tfevents.*")


def matches(rel: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if fnmatch.fnmatch(rel, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatch(rel, pattern[3:]):
            return True
    return False


class LogWatcher:
    def __init__(self, server: NnprobeServer) -> None:
        self.server = server
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._scripts: dict[str, str] = {}  # log uri -> script uri its copies were published on
        self._registered = False

    def patterns(self) -> list[str]:
        config = self.server.configs.config_for(self.server.root)
        configured = config.logs.get("patterns")
        return list(configured) if isinstance(configured, list) else list(DEFAULT_PATTERNS)

    def _relative(self, path: Path) -> str:
        root = self.server.root
        if root is not None:
            try:
                return PurePosixPath(path.resolve().relative_to(root.resolve())).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    # ---- registration

    def on_settings(self, old: Settings, new: Settings) -> None:
        if not self._registered:
            self._registered = True
            asyncio.ensure_future(self._register())

    async def _register(self) -> None:
        capabilities = self.server.client_capabilities
        workspace = capabilities.workspace if capabilities else None
        watched = workspace.did_change_watched_files if workspace else None
        if watched is None or not watched.dynamic_registration:
            return
        watchers = [types.FileSystemWatcher(glob_pattern=p) for p in self.patterns()]
        registration = types.Registration(
            id=WATCH_ID,
            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(watchers=watchers),
        )
        try:
            await self.server.client_register_capability_async(
                types.RegistrationParams(registrations=[registration])
            )
        except Exception as exc:
            log.warning("could not register the training-log watcher: %s", exc)

    # ---- changes

    def on_files(self, events: Sequence[types.FileEvent]) -> None:
        patterns = self.patterns()
        for event in events:
            path = self.server.path_of(event.uri)
            if path is None or not matches(self._relative(path), patterns):
                continue
            if event.type == types.FileChangeType.Deleted:
                self._clear(event.uri)
                continue
            self.schedule(event.uri)

    def schedule(self, uri: str) -> None:
        pending = self._pending.pop(uri, None)
        if pending is not None:
            pending.cancel()
        self._pending[uri] = asyncio.ensure_future(self._read_after_pause(uri))

    async def _read_after_pause(self, uri: str) -> None:
        await asyncio.sleep(self.server.settings.debounce)
        await self.server.ready.wait()
        path = self.server.path_of(uri)
        if path is None:
            return
        display = path.resolve().as_posix()
        try:
            # Absolute paths: the script's copies are named relative to the child's working
            # directory otherwise, which need not be the workspace root.
            findings = await self.server.linter.pool.run(
                log_process.log_findings,
                path,
                display,
                self.server.configs.config_for(path),
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reading the training log %s failed", uri)
            return
        finally:
            if self._pending.get(uri) is asyncio.current_task():
                del self._pending[uri]
        on_log = [f for f in findings if f.path == display]
        on_script = [f for f in findings if f.path != display]
        self.server.publish_findings(SOURCE, uri, on_log)
        script_uri = self._script_uri(on_script)
        old = self._scripts.pop(uri, None)
        if old is not None and old != script_uri:
            self.server.clear_findings(f"{SOURCE}:{uri}", old)
        if script_uri is not None:
            self._scripts[uri] = script_uri
            self.server.publish_findings(f"{SOURCE}:{uri}", script_uri, on_script)

    def _script_uri(self, findings: list[Any]) -> str | None:
        if not findings:
            return None
        path = Path(findings[0].path)
        if not path.is_absolute() and self.server.root is not None:
            path = self.server.root / path
        uri: str | None = from_fs_path(str(path.resolve()))
        return uri

    def _clear(self, uri: str) -> None:
        self.server.clear_findings(SOURCE, uri)
        script = self._scripts.pop(uri, None)
        if script is not None:
            self.server.clear_findings(f"{SOURCE}:{uri}", script)


async def curves(server: NnprobeServer, args: tuple[Any, ...]) -> dict[str, Any]:
    from nnprobe.server.features.commands import uri_argument

    path = server.path_of(uri_argument(CURVES, args))
    if path is None:
        return payloads.unavailable("nnprobe.curves needs a file: URI of a training log")
    try:
        png, title = await server.linter.pool.run(
            log_process.curves, path, server.configs.config_for(path)
        )
    except Exception as exc:
        return payloads.unavailable(f"cannot draw the curves of {path.name}: {exc}")
    return payloads.image(png, title)


def register(server: NnprobeServer) -> None:
    watcher = LogWatcher(server)
    server.settings_listeners.append(watcher.on_settings)
    server.watched_file_listeners.append(watcher.on_files)
    server.runtime_commands[CURVES] = curves
