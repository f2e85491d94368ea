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
    server.stop_work()           # cancel every task, end the lint process and probe workers

The session (`start_io`, `start_tcp`) is read through framing.py rather than pygls's reader, and
returns the process's exit status: 0 after shutdown and exit (or the client closing the stream
after shutdown), 1 for an exit or end of input without shutdown, 2 when the client's bytes stopped
being LSP messages (the reason is logged to the client and to stderr before the session closes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

import nnprobe
from nnprobe.core.finding import Finding
from nnprobe.server import logs
from nnprobe.server.configs import ConfigResolver
from nnprobe.server.convert import disk_index, to_diagnostics
from nnprobe.server.framing import (
    MAX_BODY,
    STALL_TIMEOUT,
    FrameParser,
    FramingError,
    Oversized,
    StdinFrames,
)
from nnprobe.server.line_map import LineMap
from nnprobe.server.positions import UTF16
from nnprobe.server.protocol import INVALID_REQUEST, ServerProtocol, SessionEnd, describe
from nnprobe.server.settings import Settings
from nnprobe.server.store import DiagnosticStore

log = logging.getLogger("nnprobe.server")

SettingsListener = Callable[[Settings, Settings], None]
WatchedFilesListener = Callable[[Sequence[types.FileEvent]], None]
LineFollower = Callable[[str, Callable[[], LineMap]], None]
RuntimeCommand = Callable[["NnprobeServer", tuple[Any, ...]], Awaitable[dict[str, Any]]]

FRAMING_EXIT = 2


class _Writer:
    """pygls's stdout writer, except that a client gone (a broken pipe) ends the session instead
    of raising into whichever handler happened to write."""

    def __init__(self, stream: BinaryIO, protocol: ServerProtocol) -> None:
        self._stream = stream
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        try:
            self._stream.write(data)
            self._stream.flush()
        except (BrokenPipeError, ConnectionError, ValueError) as exc:
            log.debug("the client's end is closed (%s)", exc)
            self._protocol.end(0 if self._protocol.shut_down else 1)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stream.close()


class NnprobeServer(LanguageServer):
    protocol: ServerProtocol

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
        self.protocol.stop_work = self.stop_work
        self._keep: set[asyncio.Task[Any]] = set()  # the session's own tasks (its TCP reader)
        self._stopped = False  # stop_work ran: the session is over
        self.oversized: set[str] = set()  # documents last sent over MAX_BODY: not checked

    # ---- the session

    def start_io(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
        """Serve one client on stdin/stdout until it exits; the exit status."""
        fd = (stdin or sys.stdin.buffer).fileno()
        return asyncio.run(self._serve_stdio(fd, stdout or sys.stdout.buffer))

    async def _serve_stdio(self, fd: int, stdout: BinaryIO) -> int:
        loop = asyncio.get_running_loop()
        ended = self._session_end(loop)
        self.protocol.set_writer(_Writer(stdout, self.protocol))

        def receive(item: bytes | Oversized | FramingError | None) -> None:
            try:
                if not ended.done():
                    self._receive(item)
            finally:
                if isinstance(item, (bytes, Oversized)):
                    frames.handled()

        def deliver(item: bytes | Oversized | FramingError | None) -> None:  # reader's thread
            loop.call_soon_threadsafe(receive, item)

        frames = StdinFrames(fd, deliver)
        frames.start()
        return await self._finish(ended)

    def start_tcp(self, host: str, port: int) -> int:  # type: ignore[override]
        """Serve one client connecting on TCP, read through framing.py; the exit status."""
        return asyncio.run(self._serve_tcp(host, port))

    async def _serve_tcp(self, host: str, port: int) -> int:
        ended = self._session_end(asyncio.get_running_loop())

        async def read(reader: asyncio.StreamReader) -> None:
            parser = FrameParser()
            while not ended.done():
                try:
                    timeout = STALL_TIMEOUT if parser.partial else None
                    try:
                        data = await asyncio.wait_for(reader.read(65536), timeout)
                    except TimeoutError:
                        raise parser.stalled(STALL_TIMEOUT) from None
                    if not data:
                        parser.end()
                    bodies = parser.feed(data)
                except (FramingError, ConnectionError) as exc:
                    self._receive(exc if isinstance(exc, FramingError) else FramingError(str(exc)))
                    return
                if not data:
                    self._receive(None)
                    return
                for body in bodies:
                    if not ended.done():
                        self._receive(body)

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if self.protocol.writer is not None:  # one client per server, as on stdio
                writer.close()
                return
            log.debug("a client connected")
            self.protocol.set_writer(writer)
            task = asyncio.current_task()
            if task is not None:
                self._keep.add(task)
            await read(reader)
            writer.close()

        server = await asyncio.start_server(connection, host, port)
        log.info("serving on %s:%s", host, port)
        async with server:
            code = await self._finish(ended)
        return code

    def _session_end(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[int]:
        ended: asyncio.Future[int] = loop.create_future()
        self.log_handler.bind(loop)
        main = asyncio.current_task()
        if main is not None:
            self._keep.add(main)

        def exception_handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            # pygls resumes a generator handler (initialized, executeCommand) from a callback
            # that does not expect its inner task to be cancelled, as stop_work cancels it.
            if not (self._stopped and isinstance(context.get("exception"), asyncio.CancelledError)):
                loop.default_exception_handler(context)

        loop.set_exception_handler(exception_handler)

        def stop(code: int) -> None:
            if not ended.done():
                ended.set_result(code)

        self.protocol.on_exit = stop
        return ended

    def _receive(self, item: bytes | Oversized | FramingError | None) -> None:
        """One body from the reader, or the end of the client's input (None), or a framing error."""
        protocol = self.protocol
        if item is None:
            log.info("the client closed its end of the connection")
            protocol.end(0 if protocol.shut_down else 1)
        elif isinstance(item, FramingError):
            self._close_for(item.reason)
        elif isinstance(item, Oversized):
            self._oversized(item)
        else:
            try:
                protocol.handle_body(item)
            except SessionEnd as exc:
                self._close_for(str(exc))

    def _oversized(self, message: Oversized) -> None:
        """A message over framing.MAX_BODY, dropped unread: a request is answered with an error;
        a didOpen or didChange gets one NP901 on its document, which is then not checked until a
        change of normal size (documents.py); anything else is logged. The session goes on."""
        size = f"{message.length / 2**20:.0f} MB"
        method, msg_id = message.field("method"), message.field("id")
        log.warning("dropped a %s message (%s) over %d bytes", size, method, MAX_BODY)
        if msg_id is not None:
            self.protocol._send_error(
                msg_id, INVALID_REQUEST, f"the message is too large ({size}, over the limit)"
            )
            return
        uri = message.document_uri()
        if uri is None or method not in (
            types.TEXT_DOCUMENT_DID_OPEN,
            types.TEXT_DOCUMENT_DID_CHANGE,
        ):
            return
        from nnprobe.core.engine import internal_finding
        from nnprobe.core.reading import LIMITS
        from nnprobe.server.store import STATIC

        self.oversized.add(uri)
        self.linter.cancel(uri)
        workspace = self._workspace()
        if method == types.TEXT_DOCUMENT_DID_OPEN and workspace is not None:
            # Open it empty, so a later change of normal size (whole text) and close apply.
            version = message.field("version")
            workspace.put_text_document(
                types.TextDocumentItem(
                    uri=uri,
                    language_id=str(message.field("languageId") or "python"),
                    version=version if isinstance(version, int) else 0,
                    text="",
                )
            )
        limit = f"{LIMITS['script'] / 2**20:g} MiB"
        text = f"the document is {size}, over the {limit} nnprobe checks"
        finding = internal_finding("NP901", self.display_path(uri), text)
        self.publish_findings(STATIC, uri, [finding], text="")

    def _close_for(self, reason: str) -> None:
        log.error("closing the session: %s", reason)
        self.protocol.end(FRAMING_EXIT)

    async def _finish(self, ended: asyncio.Future[int]) -> int:
        code = await ended
        self.stop_work()
        self.shutdown()  # type: ignore[no-untyped-call]  # pygls: its stop event, thread pool
        return code

    def stop_work(self) -> None:
        """Stop everything under way: every task but the session's own is cancelled (pending
        lints, probes, polls, requests), the lint process and the probe workers are ended."""
        from nnprobe.server.probe_worker import kill_all

        self._stopped = True
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current and task not in self._keep:
                task.cancel()
        self.linter.pool.shutdown()
        kill_all()

    def report_server_error(self, error: Exception, source: Any) -> None:
        """pygls's hook for errors outside a request (it would show them as a message box with
        the exception's text): one line to the log, the traceback to stderr."""
        log.error("internal error: %s", describe(error), exc_info=error)

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
