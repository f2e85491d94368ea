"""Static diagnostics for open training scripts: lint on open and save at once, on change after a
per-document pause (`debounce`), and publish only if the buffer is still the version that was
analysed.

Checks run in one child process (lint_process.py says why); a newer edit cancels the pending run of
the same document, and a run already under way finishes but its result is dropped. If the child
dies, the next check starts a new one.

Diagnostics of other producers (runtime findings copied onto the script) were placed on an older
text: each edit moves them as an editor moves its markers (line_map.py), and the lint's publish
after the pause sends them moved; a lint that publishes nothing (cancelled by close, failed, not a
script) sends them when its run ends.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from lsprotocol import types

from nnprobe.core.isolation import safe_path_environment
from nnprobe.server import lint_process
from nnprobe.server.configs import is_config_file
from nnprobe.server.convert import to_diagnostics
from nnprobe.server.line_map import LineMap
from nnprobe.server.store import STATIC

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from nnprobe.server.app import NnprobeServer

log = logging.getLogger("nnprobe.server.documents")
T = TypeVar("T")


def is_script(uri: str, language_id: str | None) -> bool:
    return language_id == "python" or uri.lower().endswith(".py")


class LintPool:
    """One child process for static checks, started on first use and restarted if it dies."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self.pid: int | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # Imported here: multiprocessing is not needed to answer `initialize`.
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: forking a process that runs threads can deadlock the child.
            context = multiprocessing.get_context("spawn")
            with safe_path_environment():  # the resource tracker starts here
                self._executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._executor

    def _submit(self, function: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """`function(*args)` in the child. The child is started on demand by this call, with
        `python -c` in this process's working directory: safe-path keeps that folder (the
        user's checkout when a client starts us there) off its import path."""
        pool = self._pool()
        with safe_path_environment():
            return asyncio.get_running_loop().run_in_executor(pool, function, *args)

    def warm(self) -> None:
        """Start the child and load the rules now, so the first document is not kept waiting."""
        with safe_path_environment():
            future = self._pool().submit(lint_process.warm)
        future.add_done_callback(lambda done: self._remember_pid(done.result()))

    def _remember_pid(self, pid: int) -> None:
        self.pid = pid

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return await self._submit(function, *args)
        except BrokenProcessPool:
            log.error("the lint process died; starting a new one")
            self._executor = None
            return await self._submit(function, *args)

    def shutdown(self) -> None:
        if self._executor is not None:
            lint_process.stop(self._executor)  # kills the child: no check is waited for
            self._executor = None


class StaticLinter:
    def __init__(self, server: NnprobeServer) -> None:
        self.server = server
        self.pool = LintPool()
        self._pending: dict[str, asyncio.Task[None]] = {}

    def schedule(self, uri: str, delay: float) -> None:
        """Lint `uri` after `delay` seconds, replacing any run of it not yet published."""
        self.cancel(uri)
        task = asyncio.ensure_future(self._lint(uri, delay))
        self._pending[uri] = task
        task.add_done_callback(lambda done: self._forget(uri, done))

    def cancel(self, uri: str) -> None:
        task = self._pending.pop(uri, None)
        if task is not None:
            task.cancel()

    def lint_all(self) -> None:
        for uri in self.server.open_uris():
            self.schedule(uri, 0)

    def _forget(self, uri: str, task: asyncio.Task[None]) -> None:
        if self._pending.get(uri) is task:
            del self._pending[uri]
        if uri not in self._pending:  # no newer run will publish what edits moved
            self.server.store.flush(uri)
        if not task.cancelled() and task.exception() is not None:
            log.error("linting %s failed", uri, exc_info=task.exception())

    async def _lint(self, uri: str, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        await self.server.ready.wait()
        document = self.server.open_document(uri)
        if document is None or not is_script(uri, document.language_id):
            return
        if uri in self.server.oversized:  # its NP901 stands until a change of normal size
            return
        version, text = document.version, document.source
        path = self.server.path_of(uri)
        config = self.server.configs.config_for(path)
        started = time.perf_counter()
        findings = await self.pool.run(
            lint_process.findings, text, path, self.server.display_path(uri), config
        )
        current = self.server.open_document(uri)
        if current is None or current.version != version:
            log.debug("dropped static results for %s v%s (superseded)", uri, version)
            return
        diagnostics = to_diagnostics(findings, text, self.server.position_encoding)
        log.debug(
            "%s v%s: %d diagnostics in %.1f ms",
            uri,
            version,
            len(diagnostics),
            (time.perf_counter() - started) * 1000,
        )
        self.server.store.replace(STATIC, uri, diagnostics, version)


class EditFollower:
    """The text each open document had before its last change, to tell where its lines went."""

    def __init__(self, server: NnprobeServer) -> None:
        self.server = server
        self._texts: dict[str, str] = {}  # the buffer's own string: no copy is kept

    def opened(self, uri: str, text: str) -> None:
        self._texts[uri] = text

    def closed(self, uri: str) -> None:
        self._texts.pop(uri, None)

    def changed(self, uri: str) -> None:
        """Move the other producers' diagnostics (published by the lint's next publish) and
        tell the line followers."""
        document = self.server.open_document(uri)
        if document is None:
            return
        new = document.source
        old = self._texts.get(uri)
        self._texts[uri] = new
        if old is None or old == new:
            return
        line_map = functools.cache(lambda: LineMap(old, new))
        if set(self.server.store.entries(uri)) - {STATIC} and not line_map().identity:
            self.server.store.shift(uri, line_map(), publish=False)
        for follower in self.server.line_followers:
            try:
                follower(uri, line_map)
            except Exception:
                log.exception("a line follower failed")


def register(server: NnprobeServer) -> None:
    edits = EditFollower(server)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NnprobeServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.oversized.discard(params.text_document.uri)
        edits.opened(params.text_document.uri, params.text_document.text)
        ls.linter.schedule(params.text_document.uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NnprobeServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.oversized.discard(params.text_document.uri)  # a change of normal size: check it again
        edits.changed(params.text_document.uri)
        ls.linter.schedule(params.text_document.uri, ls.settings.debounce)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: NnprobeServer, params: types.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        path = ls.path_of(uri)
        if path is not None and is_config_file(path):
            log.info("%s saved: re-reading configuration", path.name)
            ls.configs.invalidate()
            ls.linter.lint_all()
            return
        ls.linter.schedule(uri, 0)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: NnprobeServer, params: None) -> None:
        ls.linter.pool.shutdown()

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NnprobeServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.oversized.discard(uri)
        edits.closed(uri)
        ls.linter.cancel(uri)
        if STATIC in ls.store.entries(uri):
            ls.store.clear(STATIC, uri)
