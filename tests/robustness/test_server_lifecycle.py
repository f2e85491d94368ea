"""The language server's lifecycle, driven over real stdio by a raw JSON-RPC client (so it can send
what a well-behaved client library never would): `shutdown` at any moment answers null and stops
the work, `exit` ends the process 0 after shutdown and 1 without; a bad frame closes the session
with its reason logged instead of wedging it; every child process dies with a SIGKILLed server;
no Python traceback reaches the client, whatever fails inside.

Before these fixes: `shutdown` right after `initialize` answered "RuntimeError: dictionary changed
size during iteration" (with its traceback in the error's data) and the server went on linting;
`exit` always ended 0; a huge Content-Length ended the server with a MemoryError traceback, a
non-numeric one or a short body left it waiting forever; a SIGKILLed server left its lint process
and multiprocessing's resource tracker running; a command given a file URI with a NUL in it
answered a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nnprobe.server.framing import FrameParser, FramingError, StdinFrames

TIMEOUT_S = 60.0
GONE_S = 10.0  # how long a dead server's children may take to notice
INIT_OPTIONS: dict[str, Any] = {"debounce": 50}

# A script the lint takes seconds over (~0.8 MB: 3.4 s of static checks on this machine).
BIG_SCRIPT = "import torch\n" + "".join(
    f"def f{i}(x):\n    y = torch.softmax(x, dim=1)\n"
    f"    return torch.nn.functional.cross_entropy(y, x) + {i}\n"
    for i in range(8000)
)
SCRIPT = "import torch\nfrom torch import nn\n\nlayer = nn.Linear(2, 2)\n"


class RawClient:
    """`nnprobe serve` in a subprocess and the bytes it writes, parsed as LSP messages. Requests
    from the server are answered at once (workspace/configuration with `settings`)."""

    def __init__(self, workspace: Path, settings: dict[str, Any] | None = None) -> None:
        self.workspace = workspace
        self.settings = dict(INIT_OPTIONS if settings is None else settings)
        self.stderr_file = (workspace.parent / f"{workspace.name}-stderr.txt").open("w+b")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "nnprobe", "serve"],
            cwd=workspace,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr_file,
        )
        self.messages: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.eof = False
        self._ids = 0
        self._write_lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    # ---- the server's output

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while True:
                length = None
                while True:
                    line = stdout.readline()
                    if not line:
                        return
                    if line == b"\r\n":
                        break
                    name, _, value = line.decode("ascii").partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                assert length is not None
                message = json.loads(stdout.read(length))
                with self.changed:
                    self.messages.append(message)
                    self.changed.notify_all()
                if "method" in message and "id" in message:
                    self._answer(message)
        finally:
            with self.changed:
                self.eof = True
                self.changed.notify_all()

    def _answer(self, request: dict[str, Any]) -> None:
        result: Any = None
        if request["method"] == "workspace/configuration":
            result = [self.settings for _ in request["params"]["items"]]
        with contextlib.suppress(OSError, ValueError):  # the server's input may be closed
            self.send({"jsonrpc": "2.0", "id": request["id"], "result": result})

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        with self.changed:
            seen = 0
            while True:
                for message in self.messages[seen:]:
                    if predicate(message):
                        return message
                seen = len(self.messages)
                remaining = deadline - time.monotonic()
                assert not self.eof, f"the server's output ended before {what}"
                assert remaining > 0, f"no {what} in {TIMEOUT_S:g} s"
                self.changed.wait(remaining)

    def response(self, msg_id: int | str) -> dict[str, Any]:
        return self.wait_for(
            lambda m: m.get("id") == msg_id and "method" not in m, f"response to {msg_id}"
        )

    # ---- what the client sends

    def raw(self, data: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        with self._write_lock:
            stdin.write(data)
            stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any = None) -> int:
        self._ids += 1
        self.send({"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params})
        return self._ids

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def initialize(self) -> dict[str, Any]:
        msg_id = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": self.workspace.as_uri(),
                "capabilities": {"workspace": {"configuration": True}},
                "initializationOptions": self.settings,
            },
        )
        answer = self.response(msg_id)
        self.notify("initialized", {})
        return answer

    def open(self, path: Path, text: str) -> str:
        uri = path.as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        return uri

    def close_input(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.close()

    def wait_exit(self) -> int:
        code = self.process.wait(TIMEOUT_S)
        with self.changed:
            while not self.eof:
                self.changed.wait(TIMEOUT_S)
        return code

    @property
    def stderr(self) -> str:
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT_S)
        self.stderr_file.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RawClient]]:
    clients: list[RawClient] = []

    def make(settings: dict[str, Any] | None = None) -> RawClient:
        workspace = tmp_path / f"ws{len(clients)}"
        workspace.mkdir()
        client = RawClient(workspace, settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()


# ---- processes, from /proc


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process; None once it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else (fields[0], int(fields[1]))


def descendants(root: int) -> dict[int, str]:
    """Every live process under `root`, with its command line."""
    parents: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            parents.setdefault(stat[1], []).append(int(name))
    found: dict[int, str] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                found[pid] = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        todo.extend(parents.get(pid, []))
    return found


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> float:
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout:g} s"
        time.sleep(0.02)
    return time.monotonic() - began


def lint_child(server: int) -> int:
    """The lint process's pid, once it runs."""
    found: list[int] = []

    def started() -> bool:
        found[:] = [p for p, cmd in descendants(server).items() if "spawn_main" in cmd]
        return bool(found)

    wait_until(started, "the lint process to start")
    return found[0]


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def busy(pid: int) -> None:
    """Wait until `pid` is burning CPU (the lint of the big script is under way)."""
    first = cpu_ticks(pid)
    hz = os.sysconf("SC_CLK_TCK")
    wait_until(lambda: cpu_ticks(pid) - first > 0.3 * hz, "the lint to run")


# ---- shutdown and exit


def test_shutdown_right_after_initialize_answers_null_and_stops_the_lint(start: Any) -> None:
    client = start()
    client.initialize()
    uri = client.open(client.workspace / "big.py", BIG_SCRIPT)
    lint = lint_child(client.process.pid)
    busy(lint)
    shutdown = client.request("shutdown")
    answer = client.response(shutdown)
    assert answer.get("result", "missing") is None and "error" not in answer, answer
    wait_until(lambda: _stat(lint) is None, "the lint process to end at shutdown", GONE_S)
    after = client.request(
        "textDocument/hover",
        {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 0}},
    )
    refused = client.response(after)
    assert refused["error"]["code"] == -32600, refused  # InvalidRequest, not silence
    client.notify("exit")
    assert client.wait_exit() == 0
    index = client.messages.index(answer)
    late = [m.get("method") for m in client.messages[index + 1 :] if "method" in m]
    assert late == [], f"sent after the shutdown response: {late}"
    assert not descendants(client.process.pid)


def test_shutdown_before_the_first_settings_arrive(start: Any) -> None:
    """The race of the report: shutdown in the same breath as initialize and initialized."""
    client = start()
    client.initialize()
    shutdown = client.request("shutdown")
    answer = client.response(shutdown)
    assert answer.get("result", "missing") is None and "error" not in answer, answer
    client.notify("exit")
    assert client.wait_exit() == 0
    assert "Traceback" not in client.stderr, client.stderr


def test_exit_without_shutdown_ends_with_1(start: Any) -> None:
    client = start()
    client.initialize()
    client.notify("exit")
    assert client.wait_exit() == 1


# ---- framing

BAD_FRAMES = {
    "non-numeric length": (b"Content-Length: abc\r\n\r\n{}", "is not a byte count"),
    "negative length": (b"Content-Length: -5\r\n\r\n{}", "is not a byte count"),
    "huge length": (b"Content-Length: 99999999999999999999\r\n\r\n{}", "over the"),
    "past memory": (b"Content-Length: 999999999999\r\n\r\n{}", "over the"),
    "no length header": (b"Content-Type: application/json\r\n\r\n{}", "without Content-Length"),
    "not a header": (b"GET / HTTP/1.1\r\n\r\n", "not 'Name: value'"),
    "endless header": (b"Content-Length: 2" + b"0" * 9000, "no end of header"),
    "invalid JSON": (b'Content-Length: 9\r\n\r\n{"id": 1,', "not JSON"),
    "truncated body": (b'Content-Length: 100\r\n\r\n{"jsonrpc": "2.0"', "ended 17 bytes into"),
}


@pytest.mark.parametrize("frame, reason", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_bad_framing_closes_the_session_with_its_reason(
    start: Any, frame: bytes, reason: str
) -> None:
    client = start()
    client.initialize()
    client.raw(frame)
    client.close_input()  # a truncated frame ends with the stream; the others end before it
    assert client.wait_exit() == 2
    logged = [
        m["params"]["message"]
        for m in client.messages
        if m.get("method") == "window/logMessage" and m["params"]["type"] == 1
    ]
    assert any("closing the session" in text and reason in text for text in logged), logged
    assert reason in client.stderr, client.stderr
    assert "Traceback" not in client.stderr, client.stderr


def test_a_body_that_stops_midway_is_not_waited_for_forever() -> None:
    """A Content-Length larger than what the client sends, the pipe left open: the reader gives
    up after its stall timeout (10 s in the server; 0.2 s here) instead of waiting forever."""
    read_end, write_end = os.pipe()
    ends: list[bytes | FramingError | None] = []
    done = threading.Event()

    def deliver(item: bytes | FramingError | None) -> None:
        ends.append(item)
        if not isinstance(item, bytes):
            done.set()

    frames = StdinFrames(read_end, deliver, stall_timeout=0.2)
    frames.start()
    os.write(write_end, b'Content-Length: 2\r\n\r\n{}Content-Length: 50\r\n\r\n{"jsonrpc"')
    try:
        assert done.wait(TIMEOUT_S)
    finally:
        os.close(write_end)
        os.close(read_end)
    assert ends[0] == b"{}"
    assert isinstance(ends[1], FramingError) and "10 of 50 body bytes" in ends[1].reason


def test_frames_split_anywhere_are_reassembled() -> None:
    stream = b"".join(
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n%s"
        % (len(body), body)
        for body in (b"{}", '{"text": "é"}'.encode(), b"[]")
    )
    parser = FrameParser()
    bodies = [body for i in range(len(stream)) for body in parser.feed(stream[i : i + 1])]
    parser.end()
    assert bodies == [b"{}", '{"text": "é"}'.encode(), b"[]"]


# ---- children die with the server


def _sigkill_and_wait(client: RawClient, children: dict[int, str]) -> float:
    os.kill(client.process.pid, signal.SIGKILL)
    client.process.wait(TIMEOUT_S)
    return wait_until(
        lambda: not [pid for pid in children if _stat(pid) is not None],
        f"the children of the killed server to end ({children})",
        GONE_S,
    )


def test_a_killed_server_mid_lint_leaves_no_process_behind(start: Any) -> None:
    client = start()
    client.initialize()
    client.open(client.workspace / "big.py", BIG_SCRIPT)
    busy(lint_child(client.process.pid))
    children = descendants(client.process.pid)
    kinds = " ".join(children.values())
    assert "spawn_main" in kinds and "resource_tracker" in kinds, children
    took = _sigkill_and_wait(client, children)
    print(f"\n{len(children)} children of the killed server gone {took:.2f} s after SIGKILL")


def test_a_killed_server_mid_probe_leaves_no_process_behind(start: Any) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from lsp.runtime_workspace import HANGS, save_hanging  # imports torch

    client = start({**INIT_OPTIONS, "trusted": True, "probeTimeout": 600})
    script = client.workspace / "hangs" / "train_hangs.py"
    script.parent.mkdir()
    script.write_text(HANGS, encoding="utf-8")
    checkpoint = save_hanging(script.with_name("hangs.pt"))
    client.initialize()
    client.open(client.workspace / "big.py", BIG_SCRIPT)
    client.request(
        "workspace/executeCommand",
        {"command": "nnprobe.inspect", "arguments": [checkpoint.as_uri()]},
    )
    started = script.with_name("forward-started")
    wait_until(started.exists, "the probe's forward to start")
    children = descendants(client.process.pid)
    assert any("nnprobe.worker" in cmd for cmd in children.values()), children
    assert any("spawn_main" in cmd for cmd in children.values()), children
    took = _sigkill_and_wait(client, children)
    print(f"\n{len(children)} children of the killed server gone {took:.2f} s after SIGKILL")


# ---- no traceback reaches the client


def test_internal_errors_reach_the_client_as_one_line(start: Any) -> None:
    client = start()
    client.initialize()
    uri = client.open(client.workspace / "train.py", SCRIPT)
    # A request handler that raises (a NUL in a file name is a ValueError deep in os.stat).
    nul = client.request(
        "workspace/executeCommand",
        {"command": "nnprobe.inspect", "arguments": [(client.workspace / "a\0b.py").as_uri()]},
    )
    # A notification handler that raises (an edit of a document that was never opened).
    client.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": (client.workspace / "never.py").as_uri(), "version": 2},
            "contentChanges": [{"text": "import torch\n"}],
        },
    )
    # Parameters that do not fit the protocol's types: pygls logged these and never answered.
    bad = client.request("textDocument/hover", {"textDocument": {"uri": uri}, "position": "x"})
    client.send({"jsonrpc": "2.0", "id": 99, "params": {}})  # a request without a method
    client.send({"id": 98, "method": "x"})  # not JSON-RPC 2.0
    answers = {
        key: client.response(msg_id)
        for key, msg_id in {"nul": nul, "bad": bad, "no method": 99, "not 2.0": 98}.items()
    }
    assert "embedded null byte" in answers["nul"]["error"]["message"]
    assert answers["bad"]["error"]["code"] == -32602
    assert answers["not 2.0"]["error"]["code"] == -32600
    client.wait_for(
        lambda m: (
            m.get("method") == "window/logMessage"
            and "notification handler failed" in m["params"]["message"]
        ),
        "the failed notification in the log",
    )
    shutdown = client.request("shutdown")
    assert client.response(shutdown).get("result", "missing") is None
    client.notify("exit")
    assert client.wait_exit() == 0
    received = json.dumps(client.messages)
    assert "Traceback" not in received and 'File \\"' not in received, received
    assert "Traceback" in client.stderr  # they went to the server's own log


def test_a_worker_crash_keeps_its_traceback_in_the_server_log(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The worker answers an NP907 crash with its traceback (docs/worker.md); the server keeps
    that in its stderr, and the response it passes on (to diagnostics, to pictures) has none."""
    from nnprobe.server.probe_worker import ProbeWorker

    worker = ProbeWorker()

    async def crash() -> dict[str, Any]:
        return await worker.run(
            "inspect", {"checkpoint": 5}, python=None, timeout=TIMEOUT_S, memory_limit=None
        )

    try:
        response = asyncio.run(crash())
    finally:
        worker.close()
    assert response["error"]["code"] == "NP907", response
    assert "traceback" not in response["error"] and "Traceback" not in json.dumps(response)
    assert "Traceback" in capfd.readouterr().err
