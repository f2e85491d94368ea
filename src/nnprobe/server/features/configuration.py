"""Settings: initializationOptions first, then the client's `nnprobe` section from
workspace/configuration over them, re-read on workspace/didChangeConfiguration (pulled when the
client can answer workspace/configuration, else taken from the notification). A bad value is shown
as a warning and the last good settings stay in force.

`initialize` only stores the options: validating them loads the rule registry, and the reply must
be fast. Everything else happens on `initialized`, before the first lint (`server.ready`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from nnprobe.core.config import ConfigError
from nnprobe.server.configs import CONFIG_FILES
from nnprobe.server.settings import SECTION, merge, parse_settings, section

if TYPE_CHECKING:
    from nnprobe.server.app import NnprobeServer

log = logging.getLogger("nnprobe.server.configuration")

CONFIGURATION_TIMEOUT_S = 5.0
CONFIG_WATCH_ID = "nnprobe-config-files"
DID_CHANGE_CONFIGURATION_ID = "nnprobe-configuration"


def _capability(server: NnprobeServer, *path: str) -> bool:
    value: Any = server.client_capabilities
    for name in path:
        value = getattr(value, name, None)
        if value is None:
            return False
    return bool(value)


async def _pull(server: NnprobeServer) -> dict[str, Any]:
    """The client's nnprobe section, or {} when it does not answer."""
    root = server.workspace.root_uri
    request = types.ConfigurationParams(
        items=[types.ConfigurationItem(scope_uri=root, section=SECTION)]
    )
    try:
        result = await asyncio.wait_for(
            server.workspace_configuration_async(request), CONFIGURATION_TIMEOUT_S
        )
    except Exception as exc:
        log.warning("workspace/configuration failed (%s); using initializationOptions", exc)
        return {}
    return section(result[0]) if result else {}


async def reload(server: NnprobeServer, pushed: object = None) -> bool:
    """Read the settings again and apply them; False (and a warning) when they are invalid."""
    if pushed is not None:
        server.pushed_settings = section(pushed)
    layers: list[Mapping[str, Any]] = [section(server.init_options)]
    if _capability(server, "workspace", "configuration"):
        layers.append(await _pull(server))
    else:
        layers.append(server.pushed_settings)
    try:
        settings = parse_settings(merge(*layers))
    except ConfigError as exc:
        server.warn(f"invalid settings, keeping the previous ones: {exc}")
        server.ready.set()
        return False
    server.apply_settings(settings)
    return True


async def _register_watchers(server: NnprobeServer) -> None:
    registrations = []
    if _capability(server, "workspace", "did_change_configuration", "dynamic_registration"):
        registrations.append(
            types.Registration(
                id=DID_CHANGE_CONFIGURATION_ID,
                method=types.WORKSPACE_DID_CHANGE_CONFIGURATION,
                register_options=types.DidChangeConfigurationRegistrationOptions(section=SECTION),
            )
        )
    if _capability(server, "workspace", "did_change_watched_files", "dynamic_registration"):
        names = ",".join(CONFIG_FILES)
        registrations.append(
            types.Registration(
                id=CONFIG_WATCH_ID,
                method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                register_options=types.DidChangeWatchedFilesRegistrationOptions(
                    watchers=[types.FileSystemWatcher(glob_pattern=f"**/{{{names}}}")]
                ),
            )
        )
    if not registrations:
        return
    try:
        await server.client_register_capability_async(
            types.RegistrationParams(registrations=registrations)
        )
    except Exception as exc:
        log.warning("client/registerCapability failed: %s", exc)


def register(server: NnprobeServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: NnprobeServer, params: types.InitializeParams) -> None:
        ls.log_handler.bind(asyncio.get_running_loop())
        options = params.initialization_options
        ls.init_options = dict(options) if isinstance(options, Mapping) else {}

    @server.feature(types.INITIALIZED)
    async def initialized(ls: NnprobeServer, params: types.InitializedParams) -> None:
        await reload(ls)
        await _register_watchers(ls)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(
        ls: NnprobeServer, params: types.DidChangeConfigurationParams
    ) -> None:
        await reload(ls, params.settings)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(
        ls: NnprobeServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        changed = [event for event in params.changes if _is_config_uri(event.uri)]
        if changed:
            log.info("configuration files changed: re-reading them")
            ls.configs.invalidate()
            ls.linter.lint_all()
        for listener in ls.watched_file_listeners:
            try:
                listener(params.changes)
            except Exception:
                log.exception("a watched-files listener failed")


def _is_config_uri(uri: str) -> bool:
    return uri.rsplit("/", 1)[-1] in CONFIG_FILES
