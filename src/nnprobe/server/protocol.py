"""The JSON-RPC protocol the server speaks: pygls's, with its lifecycle and error paths made safe.

What pygls 2.1 does and this class changes:

- It files the future of every notification whose handler is a generator or coroutine (its own
  didOpen/didChange/didSave/didClose wrappers around ours, didChangeWatchedFiles) in its table of
  requests awaiting an answer, under a fresh random id that nothing ever removes: about 2 KiB per
  keystroke, +30 MiB after 15,000 edits in bench/load_bench.py. Here a notification's entry goes
  once its handler is done, so the table holds only requests in flight.
- Its `shutdown` cancels that table while iterating over it, and cancelling a finished
  notification's future runs the callback above, which shrinks the table: `shutdown` right after
  `initialize` answered "RuntimeError: dictionary changed size during iteration" and the server
  went on linting. Here `shutdown` first stops the work (the server's `stop_work`: pending lints
  and probes cancelled, child processes ended), then answers null; after it, nothing but responses
  goes out (no diagnostics, no log lines), and a request other than `exit` is answered
  InvalidRequest instead of being dropped unanswered.
- Its `exit` calls sys.exit inside the message handler, which the stdio loop swallowed: the
  process always ended 0. Here `exit` ends the session with 0 after `shutdown`, 1 without
  (`exit_code`), and the server's loop returns it.
- A handler's exception went to the client as a JSON-RPC error whose `data` held the Python
  traceback (requests) or as a window/showMessage "Error in server: ..." (notifications). Here the
  client gets one line saying what failed, and the traceback goes to the server's stderr log; a
  MemoryError says the input was too big.
- A request whose parameters do not fit the LSP types was logged and never answered (the client
  waited forever); here it is answered InvalidParams. Bodies are decoded here (`handle_body`),
  after framing.py has checked the frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

log = logging.getLogger("nnprobe.server.protocol")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

TOO_BIG = "the input was too big: the server ran out of memory handling it"


def describe(exc: BaseException) -> str:
    """One line for the client: what failed, never where (the traceback is for the log)."""
    if isinstance(exc, MemoryError):
        return TOO_BIG
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


class SessionEnd(Exception):
    """The session cannot go on (the client's bytes are no longer a message stream)."""


class ServerProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_code: int | None = None  # set by `exit`
        self.on_exit: Callable[[int], None] | None = None  # the session loop's stop
        self.stop_work: Callable[[], None] | None = None  # the server's, run on shutdown
        self.dropped = 0  # messages not sent because the server had shut down

    @property
    def pending_messages(self) -> int:
        """Entries in pygls's table of messages awaiting completion (debugInfo, the tests)."""
        return len(self._request_futures)

    @property
    def shut_down(self) -> bool:
        return bool(self._shutdown)

    # ---- lifecycle

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any) -> Any:
        """Stop all work, then answer null; from now on only `exit` is served."""
        self._shutdown = True
        if self.stop_work is not None:
            try:
                self.stop_work()
            except Exception as exc:
                log.error("stopping work at shutdown failed: %s", describe(exc), exc_info=exc)
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        return None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Any:
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        self.end(0 if self._shutdown else 1)

    def end(self, code: int) -> None:
        """End the session with `code` (the first end wins)."""
        if self.exit_code is None:
            self.exit_code = code
            if self.on_exit is not None:
                self.on_exit(code)

    # ---- incoming

    def handle_body(self, body: bytes) -> None:
        """One framed message. SessionEnd when the body is not JSON: a frame whose length was
        wrong leaves the rest of the stream out of step, so the session ends after saying so."""
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            reason = f"a message that is not JSON ({describe(exc)})"
            self._send_error(None, PARSE_ERROR, reason)
            raise SessionEnd(reason) from None
        except (RecursionError, MemoryError) as exc:
            detail = "nested too deeply" if isinstance(exc, RecursionError) else "too big"
            self._send_error(None, PARSE_ERROR, f"a message {detail} to read")
            return
        if (
            not isinstance(data, dict)
            or data.get("jsonrpc") != "2.0"
            or not ({"method", "result", "error"} & data.keys())
            or not isinstance(data.get("method", ""), str)
        ):
            msg_id = data.get("id") if isinstance(data, dict) else None
            self._send_error(_valid_id(msg_id), INVALID_REQUEST, "not a JSON-RPC 2.0 message")
            return
        method = data.get("method")
        try:
            message = self.structure_message(data)
        except JsonRpcException:
            self._bad_params(data, method)
            return
        try:
            self.handle_message(message)
        except (InvalidStateError, asyncio.InvalidStateError):
            # A response to a request the server stopped waiting for (its timeout passed).
            log.debug("a late response to request %s was dropped", data.get("id"))
        except Exception as exc:
            log.error("handling %s failed: %s", method or "a response", describe(exc), exc_info=exc)
            msg_id = _valid_id(data.get("id"))
            if method is not None and msg_id is not None:
                self._send_error(msg_id, INTERNAL_ERROR, f"{method} failed: {describe(exc)}")

    def _bad_params(self, data: dict[str, Any], method: object) -> None:
        msg_id = _valid_id(data.get("id"))
        what = f"{method}" if isinstance(method, str) else "a message"
        log.warning("ignored %s: its parameters do not fit the protocol's types", what)
        if isinstance(method, str) and msg_id is not None:
            self._send_error(msg_id, INVALID_PARAMS, f"invalid parameters for {method}")

    def handle_message(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if self._shutdown and method != types.EXIT:
            msg_id = getattr(message, "id", None)
            if method is not None and msg_id is not None:
                self._send_error(msg_id, INVALID_REQUEST, "the server has shut down")
            return
        super().handle_message(message)

    # ---- handler results

    def _send_handler_result(self, future: Future[Any], *, msg_id: Any) -> None:
        exc = None if future.cancelled() else future.exception()
        if exc is None or isinstance(exc, JsonRpcException):
            super()._send_handler_result(future, msg_id=msg_id)
            return
        self._request_futures.pop(msg_id, None)
        log.error("a request failed: %s", describe(exc), exc_info=exc)
        self._send_error(msg_id, INTERNAL_ERROR, f"nnprobe internal error: {describe(exc)}")

    def _check_handler_result(self, future: Future[Any]) -> None:
        # pygls's done-callback for notification handlers (the only one it does not clean up).
        if not future.cancelled() and (exc := future.exception()) is not None:
            log.error("a notification handler failed: %s", describe(exc), exc_info=exc)
        table = self._request_futures
        for msg_id in [key for key, value in list(table.items()) if value is future]:
            table.pop(msg_id, None)

    # ---- outgoing

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send_response(msg_id, error=types.ResponseError(code=code, message=message))

    def _send_response(
        self, msg_id: Any, result: Any | None = None, error: types.ResponseError | None = None
    ) -> None:
        if error is not None and error.data is not None:
            # pygls's internal errors carry {"traceback": [...]}: that stays in the log.
            log.debug("error data not sent to the client: %s", error.data)
            error = types.ResponseError(code=error.code, message=error.message)
        super()._send_response(msg_id, result, error)

    def _send_data(self, data: Any) -> None:
        if self._shutdown and getattr(data, "method", None) is not None:
            self.dropped += 1  # a notification or request after shutdown: the session is over
            return
        super()._send_data(data)


def _valid_id(value: object) -> int | str | None:
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None
