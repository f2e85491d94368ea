"""Server logging goes to the client as window/logMessage, never to stdout (the protocol
channel). Records from other threads (pygls's reader pool, a worker's reader) are handed to the
event loop, because the transport is not thread-safe.

Only the `nnprobe` logger is forwarded: pygls logs every message it sends, and forwarding that
would send a log message about each log message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from lsprotocol import types

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


class ClientLogHandler(logging.Handler):
    def __init__(self, send: Callable[[types.LogMessageParams], None]) -> None:
        super().__init__()
        self._send = send
        self.loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.setFormatter(logging.Formatter("%(message)s"))

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
    for old in [h for h in logger.handlers if isinstance(h, ClientLogHandler)]:
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.propagate = False
    set_level("info")
    return handler


def set_level(name: str) -> None:
    logging.getLogger(LOGGER).setLevel(LOG_LEVELS.get(name.lower(), logging.INFO))
