"""Server logging goes to the client as window/logMessage, never to stdout (the protocol
channel). Records from other threads (pygls's reader pool, a worker's reader) are handed to the
event loop, because the transport is not thread-safe.

Only the `nnprobe` logger is forwarded: pygls logs every message it sends, and forwarding that
would send a log message about each log message.

No traceback reaches the client: a record with an exception is sent as its message plus the
exception's one-line description, and the traceback goes to the server's stderr (its own log,
which an editor keeps beside the client's output), with every error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable

from lsprotocol import types

from nnprobe.server.protocol import describe
from nnprobe.server.settings import LOG_LEVELS

LOGGER = "nnprobe"


def _message_type(level: int) -> types.MessageType:
    if level >= logging.ERROR:
        return types.MessageType.Error
    if level >= logging.WARNING:
        return types.MessageType.Warning
    if level >= logging.INFO:
        return types.MessageType.Info
    return types.MessageType.Log


TRACEBACK = "Traceback (most recent call last)"


class OneLine(logging.Formatter):
    """The message, and the exception's type and text when there is one, never its traceback
    (nor one pasted into the message)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and describe(exc) not in message:
            message = f"{message} ({describe(exc)}; the traceback is in the server's stderr)"
        cut = message.find(TRACEBACK)
        if cut >= 0:
            message = message[:cut].rstrip() + " (the traceback is in the server's stderr)"
        return message


class StderrLog(logging.StreamHandler):  # type: ignore[type-arg]
    """Errors and every record with an exception, traceback included, on stderr."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("nnprobe %(levelname)s %(name)s: %(message)s"))

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or bool(record.exc_info)


class ClientLogHandler(logging.Handler):
    def __init__(self, send: Callable[[types.LogMessageParams], None]) -> None:
        super().__init__()
        self._send = send
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.setFormatter(OneLine())

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._loop_thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            params = types.LogMessageParams(
                type=_message_type(record.levelno), message=self.format(record)
            )
            if self.loop is not None and threading.get_ident() != self._loop_thread:
                self.loop.call_soon_threadsafe(self._send, params)
            else:
                self._send(params)
        except Exception:
            self.handleError(record)


def install(send: Callable[[types.LogMessageParams], None]) -> ClientLogHandler:
    handler = ClientLogHandler(send)
    logger = logging.getLogger(LOGGER)
    for old in [h for h in logger.handlers if isinstance(h, (ClientLogHandler, StderrLog))]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.addHandler(StderrLog())
    logger.propagate = False
    set_level("info")
    return handler


def set_level(name: str) -> None:
    logging.getLogger(LOGGER).setLevel(LOG_LEVELS.get(name.lower(), logging.INFO))
