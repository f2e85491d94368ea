"""How the server is reached: stdio, where stdout belongs to the protocol alone, and TCP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_stray_prints_go_to_stderr_not_the_protocol_channel() -> None:
    code = (
        "import os\n"
        "from nnprobe.server.main import _take_stdout\n"
        "protocol = _take_stdout()\n"
        "print('stray print')\n"
        "os.write(1, b'stray write\\n')\n"
        "protocol.write(b'Content-Length: 2\\r\\n\\r\\n{}')\n"
        "protocol.flush()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    assert run.stdout == b"Content-Length: 2\r\n\r\n{}"
    assert b"stray print" in run.stderr and b"stray write" in run.stderr


def test_bad_tcp_address_is_a_usage_error() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "nnprobe", "serve", "--tcp", "localhost:http"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2
    assert "--tcp expects HOST:PORT" in run.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tcp_server_answers_initialize() -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nnprobe", "serve", "--tcp", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)  # polling for the port to open, not waiting on a result
        with connection:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"processId": None, "rootUri": None, "capabilities": {}},
                }
            ).encode()
            connection.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            reader = connection.makefile("rb")
            length = 0
            while (header := reader.readline()) not in (b"\r\n", b""):
                if header.lower().startswith(b"content-length:"):
                    length = int(header.split(b":")[1])
            reply = json.loads(reader.read(length))
        assert reply["id"] == 1
        assert reply["result"]["serverInfo"]["name"] == "nnprobe"
        assert reply["result"]["capabilities"]["textDocumentSync"]["change"] == 1
    finally:
        server.kill()
        server.wait(timeout=30)
