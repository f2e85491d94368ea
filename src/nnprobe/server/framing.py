"""The LSP base protocol's framing (a `Content-Length: N` header, a blank line, N bytes of JSON),
read strictly.

pygls 2.1's reader (pygls.io_.run_async) trusts the header: a huge Content-Length is passed to
`stdin.read(n)` (MemoryError or OverflowError end the server with a traceback), a non-numeric or
negative one is skipped and the next message's header is then read as a body, and a body that never
completes is waited for forever: one bad frame wedged the session for good. Here every frame is
checked, and a bad one ends the session with a reason (FramingError) the server logs before it
closes: once the byte stream is out of step there is no telling where the next message starts.

`FrameParser` is the pure part (bytes in, bodies out); `StdinFrames` runs it in a daemon thread
over the raw stdin descriptor, so a read blocked at exit never holds the interpreter's lock on
`sys.stdin` (a daemon thread inside `BufferedReader.read` aborts Python's shutdown).
"""

from __future__ import annotations

import json
import os
import re
import select
import threading
from collections.abc import Callable

MAX_HEADER = 8 * 1024  # all of one message's header lines; real clients send under 100 bytes
# A didOpen carries the whole document: the biggest text kinds nnprobe reads are 64 MiB
# (core/reading.py LIMITS), and VS Code does not sync files over 50 MB to extensions.
MAX_BODY = 64 * 1024 * 1024
# A frame that has begun must finish: a client sends each message in one go, so a stall this long
# in the middle of one means its Content-Length was larger than what it sent.
STALL_TIMEOUT = 10.0
CHUNK = 64 * 1024
# A body over MAX_BODY (a didOpen of a 50 MB file of NULs is 300 MB of JSON escapes) is read and
# dropped in CHUNKs, keeping only its first HEAD bytes (its id, method and document uri), so the
# session goes on; a length past MAX_SKIP is no document a client would send: the stream is
# taken as out of step and the session closes.
MAX_SKIP = 2 * 1024 * 1024 * 1024
HEAD = 64 * 1024
TAIL = 4 * 1024


class Oversized:
    """A body over MAX_BODY, read and dropped: its length and its first HEAD bytes."""

    def __init__(self, length: int, head: bytes, tail: bytes = b"") -> None:
        self.length = length
        self.head = head
        self.tail = tail  # the last TAIL bytes: a client may send "method" and "id" after params

    def _before_params(self) -> bytes:
        """The head up to "params": an "id" or "method" inside a document's text is not one."""
        at = self.head.find(b'"params"')
        return self.head if at < 0 else self.head[:at]

    def field(self, name: str) -> object:
        """The JSON value of the top-level member `name` (a number or string) found in the
        head before "params", else None."""
        pattern = rb'"' + name.encode() + rb'"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")'
        found = re.search(pattern, self._before_params())
        if found is None:  # after params: past the last "}" but the message's own
            end = self.tail.rstrip()[:-1]
            found = re.search(pattern, end[end.rfind(b"}") + 1 :])
        if found is None:
            return None
        try:
            return json.loads(found.group(1))
        except ValueError:
            return None

    def document_uri(self) -> str | None:
        """params.textDocument.uri, when it lies in the head."""
        found = re.search(rb'"uri"\s*:\s*("(?:[^"\\]|\\.)*")', self.head)
        try:
            uri = json.loads(found.group(1)) if found is not None else None
        except ValueError:
            return None
        return uri if isinstance(uri, str) else None


class FramingError(Exception):
    """The byte stream is not LSP framing; `reason` says what was wrong, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameParser:
    """Splits a byte stream into message bodies; FramingError on the first bad frame."""

    def __init__(self, max_body: int = MAX_BODY) -> None:
        self.max_body = max_body
        self._buffer = bytearray()
        self._length: int | None = None  # the current frame's body length, once its header is in
        self._head: bytearray | None = None  # an oversized body's first bytes, while it is skipped
        self._left = 0  # an oversized body's bytes still to drop
        self._tail = b""  # its last TAIL bytes so far
        self.messages = 0  # complete bodies so far, for the reason of a later error

    @property
    def partial(self) -> bool:
        """Whether a frame has begun and not ended."""
        return bool(self._buffer) or self._length is not None

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        self._buffer += data
        bodies: list[bytes | Oversized] = []
        while True:
            if self._head is not None:  # dropping an oversized body
                take = min(len(self._buffer), self._left)
                keep = min(take, HEAD - len(self._head))
                self._head += self._buffer[:keep]
                self._tail = (self._tail + self._buffer[:take])[-TAIL:]
                del self._buffer[:take]
                self._left -= take
                if self._left:
                    return bodies
                bodies.append(Oversized(self._length or 0, bytes(self._head), self._tail))
                self._head, self._length = None, None
                self.messages += 1
                continue
            if self._length is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._buffer) > MAX_HEADER:
                        raise FramingError(self._where(f"no end of header in {MAX_HEADER} bytes"))
                    return bodies
                if end > MAX_HEADER:
                    raise FramingError(self._where(f"a header longer than {MAX_HEADER} bytes"))
                self._length = self._content_length(bytes(self._buffer[:end]))
                del self._buffer[: end + 4]
                if self._length > self.max_body:
                    self._head, self._left, self._tail = bytearray(), self._length, b""
                    continue
            if len(self._buffer) < self._length:
                return bodies
            bodies.append(bytes(self._buffer[: self._length]))
            del self._buffer[: self._length]
            self._length = None
            self.messages += 1

    def end(self) -> None:
        """The stream ended: FramingError if it ended inside a frame."""
        if self._length is not None:
            got = self._length - self._left if self._head is not None else len(self._buffer)
            raise FramingError(
                self._where(f"the input ended {got} bytes into a {self._length}-byte body")
            )
        if self._buffer:
            raise FramingError(self._where("the input ended inside a message header"))

    def stalled(self, seconds: float) -> FramingError:
        if self._length is not None:
            got = self._length - self._left if self._head is not None else len(self._buffer)
            detail = f"{got} of {self._length} body bytes"
        else:
            detail = f"{len(self._buffer)} bytes of a header"
        return FramingError(
            self._where(
                f"the client stopped for {seconds:g} s in the middle of a message "
                f"({detail}): its Content-Length was probably wrong"
            )
        )

    def _where(self, what: str) -> str:
        return f"bad message framing after {self.messages} good messages: {what}"

    def _content_length(self, header: bytes) -> int:
        length: int | None = None
        for raw in header.split(b"\r\n"):
            name, colon, value = raw.partition(b":")
            if not colon or not name.strip():
                raise FramingError(
                    self._where(f"a header line that is not 'Name: value': {raw!r:.80}")
                )
            if name.strip().lower() != b"content-length":
                continue  # Content-Type, the only other header, changes nothing here
            text = value.strip()
            if not text.isdigit() or not text.isascii():
                raise FramingError(self._where(f"Content-Length {text!r:.40} is not a byte count"))
            if length is not None and int(text) != length:
                raise FramingError(self._where("two different Content-Length headers"))
            length = int(text)
        if length is None:
            raise FramingError(self._where(f"a header without Content-Length: {header!r:.80}"))
        if length > MAX_SKIP:
            raise FramingError(
                self._where(f"a {length}-byte message, over the {MAX_SKIP}-byte limit")
            )
        return length


class StdinFrames:
    """Reads frames from a file descriptor in a daemon thread and hands each body, then the end
    (None, or the FramingError), to `deliver`, which the thread calls; deliver must be safe to
    call from another thread (loop.call_soon_threadsafe). At most `AHEAD` bodies are handed over
    and not yet `handled()`: a client that floods the server waits on its pipe, as with pygls."""

    AHEAD = 64

    def __init__(
        self,
        fd: int,
        deliver: Callable[[bytes | Oversized | FramingError | None], None],
        stall_timeout: float = STALL_TIMEOUT,
        max_body: int = MAX_BODY,
    ) -> None:
        self.fd = fd
        self.deliver = deliver
        self.stall_timeout = stall_timeout
        self.parser = FrameParser(max_body)
        self._slots = threading.Semaphore(self.AHEAD)
        self.thread = threading.Thread(target=self._run, name="lsp-stdin", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def handled(self) -> None:
        """One delivered body has been dealt with."""
        self._slots.release()

    def _run(self) -> None:
        try:
            self._loop()
        except FramingError as exc:
            self.deliver(exc)
        except OSError as exc:
            self.deliver(FramingError(f"reading the client's messages failed: {exc}"))
        else:
            self.deliver(None)

    def _loop(self) -> None:
        parser = self.parser
        while True:
            if parser.partial:
                ready, _, _ = select.select([self.fd], [], [], self.stall_timeout)
                if not ready:
                    raise parser.stalled(self.stall_timeout)
            data = os.read(self.fd, CHUNK)
            if not data:
                parser.end()
                return
            for body in parser.feed(data):
                self._slots.acquire()
                self.deliver(body)
