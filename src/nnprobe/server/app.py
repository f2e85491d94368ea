"""The language server object: the state every feature shares (documents, settings, the
diagnostics store, the static linter) and the calls other components make on it.

The features live in `features/`, one module per concern, and only adapt the protocol to the
pure core; nothing here knows a rule. The process must stay small and start fast: nothing
imported from here may pull in torch, numpy or onnx (tests/lsp checks the running server).

API for components that produce diagnostics out of process (the runtime worker):

    server.publish_findings(source, uri, findings, version=None, text=None)
    server.clear_findings(source, uri=None)
    server.store                 # DiagnosticStore: replace/clear/publish per (source, uri)
    server.settings              # Settings: interpreter, trusted, extra keys
    server.settings_listeners    # callbacks (old, new) after every settings change
    server.watched_file_listeners  # callbacks (list[FileEvent]) on workspace/didChangeWatchedFiles
    server.runtime_commands      # command id -> async (server, args) -> payload (features/commands)
    server.line_followers        # callbacks (uri, line_map) after an edit of an open document;
                                 # line_map() builds the LineMap (line_map.py) on first call
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

import nnprobe
from nnprobe.core.finding import Finding
from nnprobe.server import logs
from nnprobe.server.configs import ConfigResolver
from nnprobe.server.convert import disk_index, to_diagnostics
from nnprobe.server.line_map import LineMap
from nnprobe.server.positions import UTF16
from nnprobe.server.protocol import ServerProtocol
from nnprobe.server.settings import Settings
from nnprobe.server.store import DiagnosticStore

log = logging.getLogger("nnprobe.server")

SettingsListener = Callable[[Settings, Settings], None]
WatchedFilesListener = Callable[[Sequence[types.FileEvent]], None]
LineFollower = Callable[[str, Callable[[], LineMap]], None]
RuntimeCommand = Callable[["NnprobeServer", tuple[Any, ...]], Awaitable[dict[str, Any]]]


class NnprobeServer(LanguageServer):
    def __init__(self) -> None:
        # Full sync: pygls applies incremental edits on lines split by str.splitlines, which
        # also breaks at \f, \v and \u2028 and would corrupt the buffer; LSP splits at \n, \r.
        super().__init__(
            name="nnprobe",
            version=nnprobe.__version__,
            text_document_sync_kind=types.TextDocumentSyncKind.Full,
            protocol_cls=ServerProtocol,
        )
        self.store = DiagnosticStore(self.text_document_publish_diagnostics)
        self.settings = Settings()
        self.init_options: dict[str, Any] = {}
        self.pushed_settings: dict[str, Any] = {}
        self.configs = ConfigResolver(None, {}, self.warn)
        self.settings_listeners: list[SettingsListener] = []
        self.watched_file_listeners: list[WatchedFilesListener] = []
        self.runtime_commands: dict[str, RuntimeCommand] = {}
        self.line_followers: list[LineFollower] = []
        # Set once the first settings are in: linting waits for it, so a document opened while
        # the client is still answering workspace/configuration is linted once, with them.
        self.ready = asyncio.Event()
        self.log_handler = logs.install(self.window_log_message)

        from nnprobe.server.features.documents import StaticLinter

        self.linter = StaticLinter(self)

    # ---- workspace helpers

    def _workspace(self) -> Workspace | None:
        """The workspace, or None before `initialize` created it."""
        try:
            return self.workspace
        except RuntimeError:
            return None

    @property
    def root(self) -> Path | None:
        workspace = self._workspace()
        path = to_fs_path(workspace.root_uri) if workspace and workspace.root_uri else None
        return Path(path) if path else None

    @property
    def position_encoding(self) -> str:
        workspace = self._workspace()
        encoding = workspace.position_encoding if workspace else None
        # pygls holds a PositionEncodingKind when it negotiated one, a plain str otherwise.
        return str(getattr(encoding, "value", encoding) or UTF16)

    def open_document(self, uri: str) -> TextDocument | None:
        """The editor's buffer for `uri`, when the client has it open."""
        workspace = self._workspace()
        document: TextDocument | None = workspace.text_documents.get(uri) if workspace else None
        return document

    def open_uris(self) -> list[str]:
        workspace = self._workspace()
        return list(workspace.text_documents) if workspace else []

    @staticmethod
    def path_of(uri: str) -> Path | None:
        path = to_fs_path(uri) if uri.startswith("file:") else None
        return Path(path) if path else None

    def display_path(self, uri: str) -> str:
        """How findings name a file: relative to the workspace root when inside it."""
        path = self.path_of(uri)
        if path is None:
            return uri
        root = self.root
        if root is not None:
            try:
                return PurePosixPath(path.resolve().relative_to(root.resolve())).as_posix()
            except ValueError:
                pass
        return path.as_posix()

    # ---- messages to the user

    def warn(self, message: str) -> None:
        """A problem the user should fix (bad settings): shown once, and logged."""
        log.warning("%s", message)
        self.window_show_message(
            types.ShowMessageParams(type=types.MessageType.Warning, message=f"nnprobe: {message}")
        )

    # ---- settings

    def apply_settings(self, settings: Settings) -> None:
        old, self.settings = self.settings, settings
        logs.set_level(settings.log_level)
        self.configs.root = self.root
        self.configs.invalidate(settings.lint)
        log.info("settings: %s", settings.to_dict())
        for listener in self.settings_listeners:
            try:
                listener(old, settings)
            except Exception:
                log.exception("a settings listener failed")
        if not self.ready.is_set():
            self.linter.pool.warm()
        self.ready.set()
        self.linter.lint_all()

    # ---- diagnostics from other producers

    def publish_findings(
        self,
        source: str,
        uri: str,
        findings: Sequence[Finding],
        version: int | None = None,
        text: str | None = None,
    ) -> None:
        """Replace `source`'s diagnostics on `uri` with `findings` and publish the merge.

        Positions are converted against `text`, else the open buffer, else the file on disk
        (only the lines the findings name: convert.disk_index); give `version` only when the
        findings were computed on that buffer version (it lets their fixes be offered). Call
        from the event loop thread.
        """
        if text is None:
            document = self.open_document(uri)
            if document is not None:
                text = document.source
        if text is None:
            roots = [self.root] if self.root is not None else None
            index = disk_index(self.path_of(uri), findings, self.position_encoding, roots)
            diagnostics = to_diagnostics(list(findings), index, self.position_encoding)
        else:
            diagnostics = to_diagnostics(list(findings), text, self.position_encoding)
        self.store.replace(source, uri, diagnostics, version)

    def clear_findings(self, source: str, uri: str | None = None) -> None:
        self.store.clear(source, uri)


def create_server() -> NnprobeServer:
    from nnprobe.server.features import (
        code_actions,
        commands,
        configuration,
        documents,
        runtime,
        training_logs,
    )

    server = NnprobeServer()
    for feature in (configuration, documents, code_actions, commands, training_logs, runtime):
        feature.register(server)
    from nnprobe.server.features import pictures

    pictures.register(server)
    return server
