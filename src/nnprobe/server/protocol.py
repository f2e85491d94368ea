"""The JSON-RPC protocol the server speaks: pygls's, without its per-notification leak.

pygls 2.1 files the future of every notification whose handler is a generator or coroutine
(its own didOpen/didChange/didSave/didClose wrappers around ours, didChangeWatchedFiles) in its
table of requests awaiting an answer, under a fresh random id that nothing ever removes: about
2 KiB per keystroke, +30 MiB of server memory after 15,000 edits in bench/load_bench.py. Here a
notification's entry goes once its handler is done, so the table holds only requests in flight.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

from pygls.protocol import LanguageServerProtocol


class ServerProtocol(LanguageServerProtocol):
    def _check_handler_result(self, future: Future[Any]) -> None:
        # pygls's done-callback for notification handlers (the only one it does not clean up).
        super()._check_handler_result(future)
        table = self._request_futures
        for msg_id in [key for key, value in list(table.items()) if value is future]:
            table.pop(msg_id, None)

    @property
    def pending_messages(self) -> int:
        """Entries in pygls's table of messages awaiting completion (debugInfo, the tests)."""
        return len(self._request_futures)
