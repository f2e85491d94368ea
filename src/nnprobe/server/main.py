"""Starts the server on stdio or TCP.

On stdio, stdout is the protocol channel: one stray print (from a rule, a library, a C
extension) would corrupt a message. So the protocol gets a private duplicate of the stdout file
descriptor, and descriptor 1 itself, with sys.stdout, is pointed at stderr before anything runs.

Start-up is mostly importing pygls and lsprotocol (about a thousand attrs classes): the cyclic
garbage collector stays off while they load (each collection it ran there walked every object
loaded so far: a sixth of the time to answer `initialize`), and what start-up loaded is then
frozen out of later collections, since it lives as long as the process.

`serve` returns the session's exit status (app.py says which): an editor restarts a server that
ended non-zero without being asked to.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from nnprobe.server.app import NnprobeServer


def parse_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `PORT` (on 127.0.0.1); ValueError says what was wrong."""
    host, _, port = value.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--tcp expects HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _take_stdout() -> BinaryIO:
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return protocol


def _load_server() -> NnprobeServer:
    enabled = gc.isenabled()
    gc.disable()
    try:
        from nnprobe.server.app import create_server

        server = create_server()
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
    return server


def serve(tcp: str | None = None) -> int:
    address = parse_address(tcp) if tcp else None
    if address is None:
        protocol_out = _take_stdout()
        return _load_server().start_io(sys.stdin.buffer, protocol_out)
    return _load_server().start_tcp(*address)
