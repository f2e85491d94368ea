"""Every hostile input through every entry point: did anything run, hang or flood memory, and what
did nnprobe say about it (issue 12's table).

Inputs: tests/security/cases.py collects corpus.CORPUS, the CASES of every tests/security/
corpus_*.py (a new module joins by itself) and the damaged files of tests/robustness/
corrupt_corpus.py. Each run of an entry point gets a fresh folder built by the case: the folder is
the workspace and the working directory (a CI checkout root), the sentinel lies beside it, and
nnprobe's cache is a fresh folder there too. Entry points, launched as users launch them:

- CLI: the `nnprobe` console script, `inspect --output-format json --probe-timeout 30` on the
  input's path and, separately, on the folder (`.`), in the modes default (trusted),
  `--untrusted`, `--no-import` and `NNPROBE_UNTRUSTED=1`; a `trusted-*` case in default mode only;
  a damaged file of the robustness corpus on its path with `--untrusted` only (and the untrusted
  worker and server).
- worker: a WorkerClient (started from a `python -P` driver in the folder) sent the `inspect` job
  the language server sends for a checkpoint, untrusted (and trusted for `trusted-*` cases), with
  a 30 s budget; files that are not checkpoints are not the worker's.
- server: `python <the extension's serverArgs()>` (client-vscode/src/interpreter.ts, read from
  there), with the folder as its working directory (the extension now starts it in a folder of
  its own; Neovim and Emacs clients start it in the project, the harder case), initialized on the
  folder as an untrusted and as a trusted workspace, sent file events for what the case wrote
  that match the globs it registered (as the client's watchers would), and once those have been
  inspected a didOpen for a script or `nnprobe.inspect` for a checkpoint; waited on until it has
  published and gone idle, then shut down.

Each input's runs are ordered most telling first (see modes_for; `--first N` keeps N of them):
the full matrix is 11 runs per input, about 3 minutes per input on the shared 2-core machine, so
`--record FILE` keeps finished runs and a later invocation makes only the missing ones.

Per run: executed (the sentinel exists afterwards), hang (no exit or no answer within --timeout
seconds: the process group is killed), peak RSS (the largest of the command's ru_maxrss from
wait4 in a small wrapper and the VmHWM of every process of the run's session, sampled every
0.1 s; a run whose processes hold more than --memory-cap in all is killed), the exit code,
whether stdout was one JSON document, the finding codes and the first NP9xx message. Pickles
also get the peer scanners' verdicts (bench/pickle_scan_bench.py's picklescan, fickling and
modelscan wrappers, in a subprocess; those not installed say so).

    .venv/bin/python bench/security_bench.py              # all -> bench/RESULTS-security.md
    .venv/bin/python bench/security_bench.py --quick      # a few runs (a CI test makes them)
    .venv/bin/python bench/security_bench.py --only onnx  # inputs whose name holds "onnx"
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import functools
import json
import os
import queue
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
for extra in (ROOT / "tests" / "security", ROOT / "tests"):
    sys.path.insert(0, str(extra))

import cases as corpus_cases  # noqa: E402

BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin" / "nnprobe").exists() else None
PYTHON = str(BIN / "python") if BIN else sys.executable
NNPROBE = str(BIN / "nnprobe") if BIN else str(Path(sys.executable).with_name("nnprobe"))
MiB, GiB = 2**20, 2**30
TARGET_RSS = GiB  # issue 12: any refused input stays under 1 GB in the CLI, the worker, the server
PROBE_TIMEOUT = 30  # the budget nnprobe itself is given; --timeout is the bench's own limit
SAMPLE_S = 0.1
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".safetensors", ".onnx")
CONFIGS = (
    "pyproject.toml",
    "nnprobe.toml",
    ".nnprobe.toml",
)  # read for scripts, never published on
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
QUICK = {  # input -> the runs --quick makes of it: two lanes of about 20 s each on 2 cores
    "raw-pickle-protocol-4": {"CLI --untrusted path", "server untrusted"},
    "onnx-dotdot": {"CLI NNPROBE_UNTRUSTED=1 folder", "worker untrusted"},
}


@dataclass(frozen=True)
class Mode:
    entry: str  # CLI, worker, server
    label: str  # --untrusted, trusted, ...
    target: str  # path, folder; for the worker and server filled in per input
    trusted: bool
    flags: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        return f"{self.entry} {self.label}" + (f" {self.target}" if self.entry == "CLI" else "")


CLI_MODES = [
    ("default", True, (), ()),
    ("--untrusted", False, ("--untrusted",), ()),
    ("--no-import", False, ("--no-import",), ()),
    ("NNPROBE_UNTRUSTED=1", False, (), (("NNPROBE_UNTRUSTED", "1"),)),
]


def modes_for(entry: corpus_cases.Entry) -> list[Mode]:
    """The runs one input gets, most telling first (--first N keeps the first N): the untrusted
    folder walk of the README's CI recipe, the untrusted editor, the worker's own check, then
    trusted and the other spellings of untrusted."""
    cli = {
        f"{label} {target}": Mode("CLI", label, target, trusted, flags, env)
        for label, trusted, flags, env in CLI_MODES
        for target in ("path", "folder")
    }
    worker = {
        t: Mode("worker", "trusted" if t else "untrusted", "inspect job", bool(t)) for t in (0, 1)
    }
    server = {t: Mode("server", "trusted" if t else "untrusted", "", bool(t)) for t in (0, 1)}
    if entry.source == "corrupt":
        return [cli["--untrusted path"], server[0], worker[0]]
    if entry.trusted_only:
        return [
            cli["default folder"],
            server[1],
            worker[1],
            cli["default path"],
            server[0],
            worker[0],
        ]
    order = [
        "--untrusted folder",
        "default path",
        "--untrusted path",
        "NNPROBE_UNTRUSTED=1 folder",
        "--no-import folder",
        "default folder",
        "--no-import path",
        "NNPROBE_UNTRUSTED=1 path",
    ]
    head = [cli[order[0]], server[0], worker[0], cli[order[1]], server[1]]
    return head + [cli[k] for k in order[2:]]


# ---------------------------------------------------------------- processes and their memory


def _session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
        return int(data[data.rfind(b")") + 2 :].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def session_members(sid: int) -> list[int]:
    """Every live process of session `sid` (each run is a session of its own)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and _session_of(int(entry.name)) == sid:
            found.append(int(entry.name))
    return found


def _status(pid: int) -> tuple[int, int, str]:
    """(VmHWM, VmRSS) in bytes and the command line, from /proc (zeros once it is a zombie)."""
    hwm = rss = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
                elif line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except (OSError, ValueError, IndexError):
        return hwm, rss, ""
    return hwm, rss, command


def role_of(command: str) -> str:
    """What a process of a run is, from its command line (the leader is named by the caller)."""
    if "nnprobe.worker" in command:
        return "worker"
    if "resource_tracker" in command:
        return "resource tracker"
    if "multiprocessing" in command:
        return "lint/log process"
    if " serve" in command:
        return "server"
    if "worker_client" in command:
        return "driver"
    if "nnprobe" in command and " inspect " in command:
        return "cli"
    return "other"


class Watch:
    """Samples the VmHWM of every process in a session; kills the session past `cap` bytes of
    resident memory in all."""

    def __init__(self, sid: int, cap: int) -> None:
        self.sid = sid
        self.cap = cap
        self.peaks: dict[int, tuple[int, str]] = {}
        self.over_cap = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> list[int]:
        members = session_members(self.sid)
        total = 0
        for pid in members:
            hwm, rss, command = _status(pid)
            total += rss
            old = self.peaks.get(pid, (0, ""))
            self.peaks[pid] = (max(old[0], hwm), command or old[1])
        if total > self.cap and not self.over_cap:
            self.over_cap = True
            kill_session(self.sid, members)
        return members

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self) -> int:
        """The largest VmHWM seen, the wrapper (the session leader) left out."""
        return max((hwm for pid, (hwm, _) in self.peaks.items() if pid != self.sid), default=0)

    def by_role(self) -> dict[str, int]:
        roles: dict[str, int] = {}
        for pid, (hwm, command) in self.peaks.items():
            if pid != self.sid:
                role = role_of(command)
                roles[role] = max(roles.get(role, 0), hwm)
        return roles


def leftovers(sid: int, grace: float = 3.0) -> dict[int, str]:
    """The session's processes still alive `grace` seconds after its leader ended, by role."""
    deadline = time.monotonic() + grace
    while True:
        left = {}
        for pid in session_members(sid):
            if pid == sid:
                continue
            hwm, _, command = _status(pid)
            if command or hwm:  # a zombie waiting for its parent has neither
                left[pid] = role_of(command) if command else "?"
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill_session(sid: int, members: list[int] | None = None) -> None:
    """SIGKILL the run's process group and every process left in its session (ours only)."""
    with contextlib.suppress(OSError):
        os.killpg(sid, signal.SIGKILL)
    for pid in members if members is not None else session_members(sid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Ran:
    rc: int | None
    hang: str  # what did not end in time, "" when everything did
    over_cap: bool
    peak: int
    roles: dict[str, int]
    stdout: bytes
    stderr: bytes
    seconds: float
    left_running: str  # the processes still alive 3 s after the leader exited


# Runs start through this small wrapper (no torch in it): it forks, execs the command and reports
# the command's exit status and ru_maxrss from wait4 (which covers the children it waited for).
# Forked from the bench itself, the command would inherit the bench's ~250 MiB in ru_maxrss:
# Linux keeps the resident high-water mark of the process image that exec replaced.
WRAPPER = """
import json, os, sys
report, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
code = os.waitstatus_to_exitcode(status)
with open(report, "w") as handle:
    json.dump({"status": code, "maxrss": usage.ru_maxrss * 1024}, handle)
sys.exit(code if code >= 0 else 128 - code)
"""


def wrapped(argv: list[str], report: Path) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", WRAPPER, str(report), *argv]


def read_report(report: Path) -> tuple[int | None, int]:
    """The command's exit status and ru_maxrss, or (None, 0) when the wrapper was killed."""
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
        return int(data["status"]), int(data["maxrss"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, 0
    finally:
        with contextlib.suppress(OSError):
            report.unlink()


class Reaper:
    """Waits for the wrapper (os.wait4 in a thread), whenever it ends."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.status: int | None = None
        self.done = threading.Event()
        threading.Thread(target=self._wait, daemon=True).start()

    def _wait(self) -> None:
        with contextlib.suppress(ChildProcessError):
            _, status, _ = os.wait4(self.pid, 0)
            self.status = os.waitstatus_to_exitcode(status)
        self.done.set()


def _tail(handle: Any, limit: int = 4 * MiB) -> bytes:
    handle.seek(0)
    return bytes(handle.read(limit))


def run_process(argv: list[str], cwd: Path, env: dict[str, str], timeout: float, cap: int) -> Ran:
    """One run in a new session, bounded in time and memory."""
    start = time.monotonic()
    report = Path(tempfile.mkstemp(prefix="rusage-")[1])
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            wrapped(argv, report),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        watch = Watch(process.pid, cap)
        reaper = Reaper(process.pid)
        hang = ""
        if not reaper.done.wait(timeout):
            hang = f"no exit in {timeout:g} s"
            kill_session(process.pid)
            reaper.done.wait(30)
        process.returncode = reaper.status if reaper.status is not None else -9
        left = leftovers(process.pid)
        if left:
            watch.sample()
            kill_session(process.pid, list(left))
        watch.stop()
        status, maxrss = read_report(report)
        return Ran(
            rc=status,
            hang=hang,
            over_cap=watch.over_cap,
            peak=max(maxrss, watch.peak()),
            roles=watch.by_role(),
            stdout=_tail(out),
            stderr=_tail(err),
            seconds=time.monotonic() - start,
            left_running=", ".join(left.values()),
        )


# ------------------------------------------------------------------------- an LSP client


def server_args() -> list[str]:
    """The arguments the VS Code extension starts the server with (interpreter.ts serverArgs();
    a constant it names, such as SAFE_PATH, is looked up in the same file)."""
    source = ROOT / "client-vscode" / "src" / "interpreter.ts"
    with contextlib.suppress(OSError):
        text = source.read_text(encoding="utf-8")
        match = re.search(r"function serverArgs\(\)[^{]*\{\s*return \[([^\]]*)\]", text)
        if match:
            args = []
            for item in (i.strip() for i in match.group(1).split(",")):
                quoted = re.fullmatch(r"[\"']([^\"']*)[\"']", item)
                if quoted:
                    args.append(quoted.group(1))
                    continue
                constant = re.search(rf"const {re.escape(item)}\s*=\s*[\"']([^\"']*)[\"']", text)
                if constant is None:
                    break
                args.append(constant.group(1))
            else:
                if args:
                    return args
    return ["-m", "nnprobe", "serve"]


@functools.cache
def client_capabilities() -> dict[str, Any]:
    """VS Code's capabilities as pytest-lsp records them (file watchers included)."""
    try:
        from pygls.protocol import default_converter
        from pytest_lsp import client_capabilities as recorded

        return dict(default_converter().unstructure(recorded("visual-studio-code")))
    except Exception:
        return {
            "workspace": {
                "configuration": True,
                "didChangeWatchedFiles": {"dynamicRegistration": True},
                "workspaceFolders": True,
            },
            "textDocument": {"publishDiagnostics": {"relatedInformation": True}},
            "window": {"workDoneProgress": True},
        }


class Lsp:
    """A language client over the server's stdio that answers what a real client answers
    (configuration, registrations, progress) and records every notification."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], settings: dict[str, Any]):
        self.settings = settings
        self._err = tempfile.TemporaryFile()  # noqa: SIM115  (closed in close())
        self.report = Path(tempfile.mkstemp(prefix="rusage-")[1])
        self.process = subprocess.Popen(
            wrapped(argv, self.report),
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            start_new_session=True,
        )
        self.reaper = Reaper(self.process.pid)
        self.cond = threading.Condition()
        self.responses: dict[int, dict[str, Any]] = {}
        self.published: dict[str, list[dict[str, Any]]] = {}
        self.messages: list[dict[str, Any]] = []
        self.registrations: list[dict[str, Any]] = []
        self.garbage = 0  # bytes on stdout that were not LSP frames
        self.closed = False
        self.last = time.monotonic()
        self._ids = iter(range(1, 1 << 30))
        # Writes go through one thread: a server that stops reading must not block the bench.
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.broken_pipe = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._write, daemon=True).start()

    def _write(self) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        while (frame := self._outbox.get()) is not None:
            try:
                stdin.write(frame)
                stdin.flush()
            except (OSError, ValueError):
                self.broken_pipe = True
                return
        with contextlib.suppress(OSError, ValueError):
            stdin.close()

    def _send(self, message: dict[str, Any]) -> bool:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        if self.broken_pipe:
            return False
        self._outbox.put(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return True

    def notify(self, method: str, params: Any) -> bool:
        return self._send({"method": method, "params": params})

    def request(self, method: str, params: Any, timeout: float) -> dict[str, Any] | None:
        """The response, or None when none came within `timeout` (or the server is gone)."""
        rid = next(self._ids)
        if not self._send({"id": rid, "method": method, "params": params}):
            return None
        deadline = time.monotonic() + timeout
        with self.cond:
            while rid not in self.responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self.cond.wait(left)
            return self.responses.pop(rid)

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return condition()
                self.cond.wait(min(left, 0.2))
            return True

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        try:
            while True:
                line = stream.readline()
                if not line:
                    break
                length = None
                while line.strip():
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length" and value.strip().isdigit():
                        length = int(value.strip())
                    elif not value:
                        self.garbage += len(line)
                    line = stream.readline()
                    if not line:
                        break
                if length is None:
                    continue
                body = stream.read(length)
                try:
                    message = json.loads(body)
                except ValueError:
                    self.garbage += len(body)
                    continue
                self._dispatch(message)
        finally:
            with self.cond:
                self.closed = True
                self.cond.notify_all()

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is not None and "id" in message:
            self._send({"id": message["id"], "result": self._answer(method, message.get("params"))})
        with self.cond:
            self.last = time.monotonic()
            if method is None and "id" in message:
                self.responses[message["id"]] = message
            elif method == "textDocument/publishDiagnostics":
                params = message.get("params") or {}
                self.published.setdefault(params.get("uri", ""), []).append(params)
            elif method in ("window/showMessage", "window/logMessage"):
                self.messages.append({"method": method, **(message.get("params") or {})})
            self.cond.notify_all()

    def _answer(self, method: str, params: Any) -> Any:
        if method == "workspace/configuration":
            items = (params or {}).get("items") or []
            return [
                self.settings if str(i.get("section") or "nnprobe").startswith("nnprobe") else None
                for i in items
            ]
        if method == "client/registerCapability":
            with self.cond:
                self.registrations.extend((params or {}).get("registrations") or [])
        return None

    def watched_globs(self) -> list[str]:
        globs = []
        for registration in self.registrations:
            if registration.get("method") == "workspace/didChangeWatchedFiles":
                for watcher in (registration.get("registerOptions") or {}).get("watchers", []):
                    pattern = watcher.get("globPattern")
                    if isinstance(pattern, str):
                        globs.append(pattern)
                    elif isinstance(pattern, dict) and isinstance(pattern.get("pattern"), str):
                        globs.append(pattern["pattern"])
        return globs

    def stderr(self) -> bytes:
        with contextlib.suppress(OSError, ValueError):
            return _tail(self._err, 256 * 1024)
        return b""

    def close(self) -> None:
        self._outbox.put(None)
        with contextlib.suppress(OSError, ValueError):
            self._err.close()


def _braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for option in match.group(1).split(",") for p in _braces(head + option + tail)]


def glob_matches(rel: str, pattern: str) -> bool:
    """VS Code's glob on a workspace-relative path, for the patterns servers register."""
    for option in _braces(pattern):
        if option.startswith("**/"):
            if PurePosixPath(rel).match(option[3:]) or fnmatch.fnmatch(rel, option[3:]):
                return True
        elif fnmatch.fnmatch(rel, option):
            return True
    return False


# ------------------------------------------------------------------------------ the runs


@dataclass
class Cell:
    input: str
    source: str
    entry: str
    mode: str
    target: str
    trusted: bool
    executed: bool = False
    hang: str = ""
    over_cap: bool = False
    peak: int = 0
    roles: dict[str, int] = field(default_factory=dict)
    rc: int | None = None
    json_ok: bool | None = None
    findings: list[tuple[str, str]] = field(default_factory=list)
    expected: str = "-"
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    key: str = ""  # Mode.key: what --record and --modes know the run by


def _clean_env(cell_dir: Path, extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NNPROBE_", "PYTHON")) and k not in ("VIRTUAL_ENV",)
    }
    env["NNPROBE_CACHE_DIR"] = str(cell_dir / "cache")
    env.update(extra)
    return env


def _regular(path: Path) -> bool:
    with contextlib.suppress(OSError):
        return stat.S_ISREG(os.stat(path).st_mode)
    return False


def _safe_read(path: Path, limit: int) -> bytes | None:
    """The bench's own read of an input: regular files only, never blocking, at most `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        chunks = []
        while chunk := os.read(fd, MiB):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _nearest_config(folder: Path) -> str | None:
    for name in ("nnprobe.toml", "pyproject.toml"):
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _walk(folder: Path) -> Iterator[Path]:
    """Files under `folder`, links included, links to folders not followed."""
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in (*filenames, *(d for d in dirnames if os.path.islink(Path(dirpath, d)))):
            yield Path(dirpath, name)


def findings_of(document: Any) -> list[tuple[str, str]]:
    if not isinstance(document, dict):
        return []
    return [
        (str(f.get("code", "?")), str(f.get("message", "")))
        for f in document.get("findings") or []
        if isinstance(f, dict)
    ]


DRIVER = """
import json, sys
from nnprobe.probe.worker_client import WorkerClient, WorkerError, default_memory_budget
method, params, timeout = json.loads(sys.argv[1])
client = WorkerClient()
try:
    response = client.request(method, params, timeout, "the inspection", default_memory_budget())
except WorkerError as exc:
    response = {"error": {"code": "WorkerError", "message": exc.message}}
finally:
    client.close()
sys.__stdout__.write(json.dumps(response))
"""


def run_cli(cell: Cell, mode: Mode, ws: Path, target: Path, env: dict[str, str], o: Any) -> None:
    where = "." if mode.target == "folder" else os.path.relpath(target, ws)
    argv = [NNPROBE, "inspect", "--output-format", "json", "--probe-timeout", str(PROBE_TIMEOUT)]
    ran = run_process([*argv, *mode.flags, where], ws, env, o.timeout, o.memory_cap)
    _fill(cell, ran)
    try:
        document = json.loads(ran.stdout.decode("utf-8"))
        cell.json_ok = isinstance(document, dict) and "findings" in document
    except ValueError:
        document, cell.json_ok = None, False
    cell.findings = findings_of(document)


def run_worker(cell: Cell, mode: Mode, ws: Path, target: Path, env: dict[str, str], o: Any) -> None:
    params = {
        "checkpoint": str(target),
        "root": str(ws),
        "config_file": _nearest_config(ws),
        "trusted": mode.trusted,
    }
    job = json.dumps(["inspect", params, PROBE_TIMEOUT])
    ran = run_process([PYTHON, "-P", "-c", DRIVER, job], ws, env, o.timeout, o.memory_cap)
    _fill(cell, ran)
    try:
        response = json.loads(ran.stdout.decode("utf-8"))
        cell.json_ok = True
    except ValueError:
        response, cell.json_ok = {}, False
    if "error" in response:
        error = response["error"]
        cell.findings = [(str(error.get("code")), str(error.get("message", "")))]
        if error.get("traceback"):
            cell.notes.append("traceback in the answer")
    else:
        cell.findings = findings_of(response.get("result"))


def _fill(cell: Cell, ran: Ran) -> None:
    cell.rc, cell.hang, cell.over_cap = ran.rc, ran.hang, ran.over_cap
    cell.peak, cell.roles, cell.seconds = ran.peak, ran.roles, ran.seconds
    if ran.left_running:
        cell.notes.append(f"left running after it exited: {ran.left_running}")
    if b"Traceback (most recent call last)" in ran.stderr:
        last = ran.stderr.decode("utf-8", "replace").strip().splitlines()[-1][:120]
        cell.notes.append(f"traceback on stderr ({last})")


def open_scripts(lsp: Lsp, ws: Path, timeout: float, limit: int = 3) -> list[str]:
    """didOpen the workspace's own scripts (regular, small, not links) as a user would, so that
    a config or a log beside them is read for them; what went unanswered."""
    scripts = sorted(
        p for p in _walk(ws) if p.suffix == ".py" and not p.is_symlink() and _regular(p)
    )[:limit]
    for path in scripts:
        text = _safe_read(path, 2 * MiB)
        if text is None:
            continue
        uri = path.as_uri()
        document = {
            "uri": uri,
            "languageId": "python",
            "version": 1,
            "text": text.decode("utf-8", "replace"),
        }
        lsp.notify("textDocument/didOpen", {"textDocument": document})
        if not lsp.wait(lambda uri=uri: uri in lsp.published, timeout):
            return [f"no diagnostics for the opened {path.name}"]
    return []


def settle(lsp: Lsp, timeout: float) -> list[str]:
    """Wait until the server has no inspection running or pending and has been quiet for a
    second; what it failed to answer, if anything."""
    deadline = time.monotonic() + timeout
    status_command = {"command": "nnprobe.probeStatus", "arguments": []}
    while time.monotonic() < deadline:
        status = lsp.request("workspace/executeCommand", status_command, timeout)
        if status is None:
            return ["nnprobe.probeStatus unanswered"]
        result = status.get("result") or {}
        if not result.get("running") and not result.get("pending"):
            if lsp.wait(lambda: time.monotonic() - lsp.last > 1.0, 3.0):
                return []
        else:
            time.sleep(0.2)
    return [f"inspections still running after {timeout:g} s"]


def run_server(cell: Cell, mode: Mode, ws: Path, target: Path, env: dict[str, str], o: Any) -> None:
    start = time.monotonic()
    settings = {"debounce": 50, "progressDelay": 0, "trusted": mode.trusted, "probeTimeout": 30}
    lsp = Lsp([PYTHON, *server_args()], ws, env, settings)
    watch = Watch(lsp.process.pid, o.memory_cap)
    hangs: list[str] = []
    payload: Any = None
    try:
        uri = ws.as_uri()
        init = lsp.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": uri,
                "workspaceFolders": [{"uri": uri, "name": ws.name}],
                "capabilities": client_capabilities(),
                "initializationOptions": settings,
            },
            o.timeout,
        )
        if init is None:
            hangs.append("initialize unanswered" if not lsp.closed else "exited before initialize")
            return
        lsp.notify("initialized", {})
        if lsp.wait(lambda: bool(lsp.watched_globs()), 3.0):
            lsp.wait(lambda: time.monotonic() - lsp.last > 0.3, 1.0)
        globs = lsp.watched_globs()
        events = [
            {"uri": path.as_uri(), "type": 1}
            for path in _walk(ws)
            if any(glob_matches(path.relative_to(ws).as_posix(), g) for g in globs)
        ]
        if events:
            # Inspections the events start finish before the command below: a command sent
            # while an event's job is under way is superseded and never answered (a server bug
            # of its own, in the report), which would hide what the input does.
            lsp.notify("workspace/didChangeWatchedFiles", {"changes": events})
            hangs += settle(lsp, o.timeout)
        target_uri = target.as_uri()
        # A script the client can read is sent whole (didOpen); a link, a FIFO or a device is
        # the server's to read (nnprobe.inspect), as the guarded reader must.
        readable = target.suffix == ".py" and not target.is_symlink()
        text = _safe_read(target, 50 * MiB) if readable else None
        if hangs:
            pass
        elif target.suffix != ".py" and target.suffix.lower() not in CHECKPOINT_SUFFIXES:
            cell.target = "file events"  # a folder, a log, a config: what the watchers report
            watched = target_uri in {e["uri"] for e in events} and target.name not in CONFIGS
            if watched and not lsp.wait(lambda: target_uri in lsp.published, 15.0):
                cell.notes.append("no diagnostics published on it within 15 s of its file event")
            hangs += open_scripts(lsp, ws, o.timeout)
        elif text is not None:
            cell.target = "didOpen"
            document = {
                "uri": target_uri,
                "languageId": "python",
                "version": 1,
                "text": text.decode("utf-8", "replace"),
            }
            lsp.notify("textDocument/didOpen", {"textDocument": document})
            if not lsp.wait(lambda: target_uri in lsp.published, o.timeout):
                hangs.append("no diagnostics for the opened script")
        else:
            cell.target = "nnprobe.inspect"
            command = {"command": "nnprobe.inspect", "arguments": [target_uri]}
            answer = lsp.request("workspace/executeCommand", command, o.timeout)
            if answer is None:
                hangs.append("nnprobe.inspect unanswered")
            elif "error" in answer:
                payload = {"findings": [{"code": "error", "message": answer["error"]["message"]}]}
            else:
                payload = answer.get("result")
        if not hangs:
            hangs += settle(lsp, o.timeout)
        if not hangs and lsp.request("shutdown", None, 15) is None:
            hangs.append("shutdown unanswered")
        watch.sample()
    finally:
        closed_first = lsp.closed
        lsp.notify("exit", None)
        if not lsp.reaper.done.wait(10):
            if not hangs:
                cell.notes.append("did not exit after `exit`")
            kill_session(lsp.process.pid)
            lsp.reaper.done.wait(30)
        lsp.process.returncode = lsp.reaper.status if lsp.reaper.status is not None else -9
        left = leftovers(lsp.process.pid)
        if left:
            watch.sample()
            cell.notes.append(f"left running after the server exited: {', '.join(left.values())}")
            kill_session(lsp.process.pid, list(left))
        watch.stop()
        cell.rc, maxrss = read_report(lsp.report)
        cell.hang = "; ".join(hangs)
        ended_by_itself(cell, closed_first)
        cell.over_cap = watch.over_cap
        cell.peak = max(watch.peak(), maxrss)
        cell.roles = watch.by_role()
        cell.seconds = time.monotonic() - start
        cell.json_ok = None
        found = findings_of(payload)
        if isinstance(payload, dict) and payload.get("kind") == "unavailable":
            found.append(("unavailable", str(payload.get("reason", ""))))
        for params in (lsp.published.get(target.as_uri()) or [])[-1:]:
            found += [
                (str(d.get("code")), str(d.get("message", ""))) for d in params["diagnostics"]
            ]
        if cell.target == "file events":
            for params_list in lsp.published.values():
                found += [
                    (str(d.get("code")), str(d.get("message", "")))
                    for d in params_list[-1]["diagnostics"]
                ]
        for message in lsp.messages:
            if message["method"] == "window/showMessage" and message.get("type", 4) <= 2:
                found.append(("showMessage", str(message.get("message", ""))))
        cell.findings = list(dict.fromkeys(found))
        said = [m for _, m in found] + [str(m.get("message", "")) for m in lsp.messages]
        if any("Traceback (most recent call last)" in m for m in said):
            cell.notes.append("a traceback reached the client")
        if lsp.garbage:
            cell.notes.append(f"{lsp.garbage} bytes on the server's stdout were not LSP")
        lsp.close()


def ended_by_itself(cell: Cell, closed_first: bool | None = None) -> None:
    """A server that closed the session on its own before the bench sent `exit` did not hang:
    say what it left unanswered as a note. For runs recorded without `closed_first`, an exit
    status other than 0/1 (the answers to exit after / without shutdown) tells the same."""
    if closed_first is None:
        closed_first = cell.rc not in (None, 0, 1)
    if cell.entry == "server" and cell.hang and closed_first:
        cell.notes.append(f"the server ended the session itself (exit {cell.rc}): {cell.hang}")
        cell.hang = ""


RUNNERS = {"CLI": run_cli, "worker": run_worker, "server": run_server}


def reasonless(code: str, message: str) -> bool:
    """A refusal or error that does not say why: empty, cut off after a colon, a placeholder
    name, a traceback, or a bare phrase with no clause explaining it."""
    text = message.strip()
    if not text or text.endswith(":") or len(text) < 12:
        return True
    if "unknown.unknown" in text or "Traceback" in text:
        return True
    return not any(mark in text for mark in (":", ";", " because ", " since ", " so ", " (", "—"))


def notable(code: str) -> bool:
    return code.startswith("NP9") or code in ("error", "unavailable", "showMessage", "WorkerError")


def judge(cell: Cell, entry: corpus_cases.Entry) -> None:
    """Whether the case's finding (its code, with its phrase) was reported: judged on untrusted
    runs, and for `trusted-*` cases on trusted ones (trust may rightly load what it refuses)."""
    case = entry.case
    if case.code and (not cell.trusted or entry.trusted_only):
        # The server reports a config it cannot use as a warning (the defaults lint), not NP901.
        spoken = ("showMessage",) if cell.entry == "server" else ()
        hits = [m for c, m in cell.findings if c == case.code or c in spoken]
        if not hits:
            cell.expected = f"missing {case.code}"
        elif case.says and not any(case.says in m for m in hits):
            cell.expected = f"{case.code} without '{case.says}'"
        else:
            cell.expected = "ok"


def run_cell(entry: corpus_cases.Entry, mode: Mode, work: Path, o: Any) -> Cell:
    cell = Cell(entry.name, entry.source, mode.entry, mode.label, mode.target, mode.trusted)
    cell.key = mode.key
    cell_dir = Path(tempfile.mkdtemp(prefix="cell-", dir=work))
    ws = cell_dir / "ws"
    ws.mkdir()
    sentinel = cell_dir / "SENTINEL_code_ran"
    try:
        try:
            target = Path(entry.case.build(ws, sentinel))
        except Exception as exc:
            cell.notes.append(f"build failed: {type(exc).__name__}: {exc}"[:200])
            return cell
        if not target.is_absolute():
            target = ws / target
        if mode.entry == "worker" and target.suffix.lower() not in CHECKPOINT_SUFFIXES:
            cell.target = "n/a"
            cell.notes.append("not a checkpoint: the worker is not sent it")
            return cell
        extra = dict(mode.env)
        extra.update(getattr(entry.case, "env", None) or {})
        env = _clean_env(cell_dir, extra)
        RUNNERS[mode.entry](cell, mode, ws, target, env, o)
        cell.executed = os.path.lexists(sentinel)
        cell.findings = [(c, m.replace(str(ws), "<ws>")) for c, m in cell.findings]
        judge(cell, entry)
        if cell.rc not in (0, 1) and mode.entry == "CLI" and not cell.hang:
            cell.notes.append(f"exit code {cell.rc}")
        return cell
    finally:
        _remove(cell_dir)


def _remove(path: Path) -> None:
    def retry(function: Any, name: str, info: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            function(name)

    shutil.rmtree(path, onerror=retry)


# -------------------------------------------------------------------------- peer scanners

SCAN = """
import json, sys
sys.path.insert(0, sys.argv[2])
import pickle_scan_bench as bench
from importlib.util import find_spec
from pathlib import Path
path = Path(sys.argv[1])
out = {}
for name, module, scan in (("picklescan", "picklescan", bench.scan_picklescan),
                           ("fickling", "fickling", bench.scan_fickling),
                           ("modelscan", "modelscan", bench.scan_modelscan)):
    if find_spec(module) is None:
        out[name] = "not installed"
        continue
    try:
        verdict = scan(path)
    except Exception as exc:
        out[name] = f"error ({type(exc).__name__})"
        continue
    names = ", ".join(sorted(verdict.names)) or verdict.error
    out[name] = ("flagged" if verdict.flagged else "not flagged") + (f": {names}" if names else "")
sys.__stdout__.write("\\n" + json.dumps(out) + "\\n")
"""
SCANNERS = ("picklescan", "fickling", "modelscan")


def is_pickle(path: Path) -> bool:
    """A bare pickle, or a zip archive holding one (torch.save, TorchScript), named like a
    checkpoint; read without blocking and without following into FIFOs or devices."""
    if path.suffix.lower() not in PICKLE_SUFFIXES or not _regular(path):
        return False
    head = _safe_read(path, 64 * MiB)
    if head is None or not head:
        return False
    if head[:4] == b"PK\x03\x04":
        return b".pkl" in head
    return head[:1] in (b"\x80", b"(", b"c", b"]", b"}", b"I", b"N")


def scan_peers(entry: corpus_cases.Entry, work: Path, o: Any) -> dict[str, str] | None:
    cell_dir = Path(tempfile.mkdtemp(prefix="scan-", dir=work))
    try:
        ws = cell_dir / "ws"
        ws.mkdir()
        try:
            path = Path(entry.case.build(ws, cell_dir / "SENTINEL_code_ran"))
        except Exception:
            return None
        if not is_pickle(path):
            return None
        env = _clean_env(cell_dir, {})
        if o.peers:
            env["PYTHONPATH"] = o.peers
        argv = [PYTHON, "-P", "-c", SCAN, str(path), str(ROOT / "bench")]
        ran = run_process(argv, cell_dir, env, o.timeout, o.memory_cap)
        try:  # the last line: a scanner may print on stdout too
            verdicts = dict(json.loads(ran.stdout.decode("utf-8", "replace").splitlines()[-1]))
        except (ValueError, IndexError):
            reason = ran.hang or ("over the memory cap" if ran.over_cap else f"exit {ran.rc}")
            verdicts = {name: f"scanner run failed ({reason})" for name in SCANNERS}
        if os.path.lexists(cell_dir / "SENTINEL_code_ran"):
            verdicts = {k: f"{v} (SENTINEL CREATED)" for k, v in verdicts.items()}
        return verdicts
    finally:
        _remove(cell_dir)


# -------------------------------------------------------------------------------- record


Record = tuple[dict[tuple[str, str], Cell], dict[str, dict[str, str]], list[str]]


def read_record(path: Path | None) -> Record:
    """The runs, scans and invocation lines a --record file holds."""
    cells: dict[tuple[str, str], Cell] = {}
    scans: dict[str, dict[str, str]] = {}
    invocations: list[str] = []
    if path is None or not path.exists():
        return cells, scans, invocations
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(ValueError, TypeError, KeyError):
            item = json.loads(line)
            if "cell" in item:
                cell = Cell(**item["cell"])
                cell.findings = [tuple(f) for f in cell.findings]  # type: ignore[misc]
                cells[(cell.input, cell.key)] = cell
            elif "scan" in item:
                scans[item["scan"]] = item["verdicts"]
            elif "invocation" in item:
                invocations.append(str(item["invocation"]))
    return cells, scans, invocations


def append_record(path: Path | None, item: dict[str, Any]) -> None:
    if path is not None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(item) + "\n")


# -------------------------------------------------------------------------------- report


def mib(size: int) -> str:
    return f"{size / MiB:.0f} MiB"


def short(text: str, limit: int = 150) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def first_message(cell: Cell) -> tuple[str, bool]:
    """The message to show (the first refusal or error, else the first finding) and whether a
    refusal or error in the run lacks a reason."""
    special = [(c, m) for c, m in cell.findings if notable(c)]
    missing = any(reasonless(c, m) for c, m in special)
    chosen = special or cell.findings
    if not chosen:
        return "", missing
    code, message = chosen[0]
    return f"{code}: {message}", missing


def problems(cell: Cell) -> list[str]:
    out = []
    if cell.executed:
        out.append("EXECUTED" + (" (trusted run)" if cell.trusted else " WITHOUT TRUST"))
    if cell.hang:
        out.append(f"hang: {cell.hang}")
    if cell.over_cap:
        out.append("killed by the bench over its memory cap")
    if cell.peak > TARGET_RSS:
        out.append(f"peak RSS {mib(cell.peak)} > 1 GiB")
    if first_message(cell)[1]:
        out.append("a message without a reason")
    if any(c == "NP907" for c, _ in cell.findings):
        out.append("NP907 (nnprobe crashed)")
    if cell.expected not in ("-", "ok"):
        out.append(f"expected finding: {cell.expected}")
    if cell.json_ok is False:
        out.append("stdout is not one JSON document")
    out.extend(n for n in cell.notes if not n.startswith("not a checkpoint"))
    return out


def render(
    cells: list[Cell],
    scans: dict[str, dict[str, str]],
    entries: list[corpus_cases.Entry],
    broken: dict[str, str],
    header: list[str],
    command: str,
) -> str:
    for cell in cells:
        ended_by_itself(cell)  # records made before the rule
    ran = [c for c in cells if c.target != "n/a" and not any("build failed" in n for n in c.notes)]
    untrusted_exec = [c for c in ran if c.executed and not c.trusted]
    trusted_exec = [c for c in ran if c.executed and c.trusted]
    hangs = [c for c in ran if c.hang]
    reasonless_cells = [c for c in ran if first_message(c)[1]]
    by_source: dict[str, int] = {}
    for entry in entries:
        by_source[entry.source] = by_source.get(entry.source, 0) + 1
    lines = [
        "# Hostile inputs through every entry point",
        "",
        f"Printed by `{command}` (issue 12); the module docstring of bench/security_bench.py says "
        "what each run is and how it is measured.",
        "",
        *header,
        "",
        "## Summary",
        "",
        f"- inputs: {len(entries)} ("
        + ", ".join(f"{s} {n}" for s, n in by_source.items())
        + f"); runs: {len(ran)}"
        + (f"; corpus modules that failed to load: {broken}" if broken else ""),
        f"- executions without trust: **{len(untrusted_exec)}** (target 0)"
        + _names(untrusted_exec),
        f"- executions in trusted runs: {len(trusted_exec)}" + _names(trusted_exec),
        f"- hangs (no exit or answer within the time limit): **{len(hangs)}** (target 0)"
        + _names(hangs),
    ]
    for entry_point in ("CLI", "worker", "server"):
        mine = [c for c in ran if c.entry == entry_point]
        if not mine:
            continue
        top = max(mine, key=lambda c: c.peak)
        over = [c for c in mine if c.peak > TARGET_RSS]
        lines.append(
            f"- peak RSS, {entry_point}: max {mib(top.peak)} ({top.input}, {top.mode}); "
            f"over the 1 GiB target: **{len(over)}**" + _names(over)
        )
    lines += [
        f"- runs with a refusal or error message that gives no reason: **{len(reasonless_cells)}**"
        + _names(reasonless_cells),
        f"- runs whose expected finding (the case's code and phrase) is missing: "
        f"{sum(c.expected not in ('-', 'ok') for c in ran)}",
        f"- CLI runs whose stdout was not one JSON document: "
        f"{sum(c.json_ok is False for c in ran if c.entry == 'CLI')}; exit codes other than 0/1: "
        f"{sum(c.rc not in (0, 1) for c in ran if c.entry == 'CLI' and not c.hang)}",
        "",
    ]
    flagged = [(c, problems(c)) for c in cells]
    flagged = [(c, p) for c, p in flagged if p]
    lines += ["## Runs with a problem", ""]
    if flagged:
        lines += ["| input | entry point | mode | target | problem |", "|---|---|---|---|---|"]
        for c, p in flagged:
            lines.append(
                f"| {c.input} | {c.entry} | {c.mode} | {c.target} | {short('; '.join(p), 300)} |"
            )
    else:
        lines.append("None.")
    lines += ["", "## Pickles: what the peer scanners say", ""]
    if scans:
        nnprobe_says: dict[str, set[str]] = {}
        for c in cells:
            if not c.trusted and c.target != "n/a":
                nnprobe_says.setdefault(c.input, set()).update(code for code, _ in c.findings)
        lines += [
            "| input | nnprobe (codes, untrusted runs) | " + " | ".join(SCANNERS) + " |",
            "|---|---|" + "---|" * len(SCANNERS),
        ]
        for name, verdicts in scans.items():
            row = [short(verdicts.get(s, "-"), 120) for s in SCANNERS]
            says = ", ".join(sorted(nnprobe_says.get(name, set()))) or "-"
            lines.append(f"| {name} | {says} | " + " | ".join(row) + " |")
        counts = []
        refused = [n for n in scans if "NP902" in nnprobe_says.get(n, set())]
        for s in SCANNERS:
            if all(v.get(s) == "not installed" for v in scans.values()):
                counts.append(f"{s} not installed")
                continue
            flagged_n = sum(scans[n].get(s, "").startswith("flagged") for n in refused)
            counts.append(f"{s} flagged {flagged_n}")
        lines += [
            "",
            f"Of the {len(refused)} pickles nnprobe refused as code (NP902): "
            + "; ".join(counts)
            + ". The others are bombs, damaged zips or the benign checkpoints beside hostile "
            "scripts (trusted-*); fickling flags every checkpoint. fickling and modelscan are "
            "not project "
            "dependencies: `.venv/bin/pip install --target DIR --no-deps fickling==0.1.12 "
            "modelscan==0.8.8 tomlkit`, then `--peers DIR`.",
        ]
    else:
        lines.append("No pickle among the inputs run.")
    lines += [
        "",
        "## Every run",
        "",
        "| input | source | entry point | mode | target | executed | hang | peak RSS | exit | "
        "JSON | findings | expected | message |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        message, missing = first_message(c)
        codes = ", ".join(dict.fromkeys(code for code, _ in c.findings)) or "none"
        roles = "; ".join(f"{k} {mib(v)}" for k, v in sorted(c.roles.items()) if v)
        peak = mib(c.peak) + (f" ({roles})" if c.entry != "CLI" and roles else "")
        if c.peak > TARGET_RSS:
            peak = f"**{peak}**"
        note = "; ".join(c.notes)
        lines.append(
            "| "
            + " | ".join(
                [
                    c.input,
                    c.source,
                    c.entry,
                    c.mode,
                    c.target,
                    "**YES**" if c.executed else "no",
                    f"**YES** ({c.hang})" if c.hang else "no",
                    peak if c.target != "n/a" else "-",
                    "-" if c.rc is None else str(c.rc),
                    {True: "yes", False: "**no**", None: "-"}[c.json_ok],
                    codes if c.target != "n/a" else "-",
                    c.expected if c.expected in ("-", "ok") else f"**{c.expected}**",
                    ("**no reason** " if missing else "")
                    + short(message)
                    + (f" ({short(note, 120)})" if note else ""),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _names(cells: list[Cell], limit: int = 12) -> str:
    if not cells:
        return ""
    shown = [f"{c.input} ({c.entry} {c.mode}{' ' + c.target if c.entry == 'CLI' else ''})"
             for c in cells[:limit]]  # fmt: skip
    more = f", and {len(cells) - limit} more" if len(cells) > limit else ""
    return ": " + ", ".join(shown) + more


def machine_header(started_load: tuple[float, ...], seconds: float, runs: int) -> list[str]:
    import platform

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    end = os.getloadavg()
    torch_version = subprocess.run(
        [PYTHON, "-c", "import torch; print(torch.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return [
        f"Measured on CPython {platform.python_version()}, torch {torch_version}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()} (the shared dev "
        f"machine, other jobs running): load average {started_load[0]:.1f} at the start, "
        f"{end[0]:.1f} at the end; {runs} runs in {seconds / 60:.1f} min; at commit "
        f"{short(commit, 90)}.",
    ]


# ---------------------------------------------------------------------------------- main


def select(
    entries: list[corpus_cases.Entry], o: Any
) -> list[tuple[corpus_cases.Entry, list[Mode]]]:
    chosen = []
    for entry in entries:
        if o.only and not any(
            pattern in entry.name or fnmatch.fnmatch(entry.name, pattern) for pattern in o.only
        ):
            continue
        modes = modes_for(entry)[: o.first] if o.first else modes_for(entry)
        if o.quick:
            wanted = QUICK.get(entry.name)
            if not wanted:
                continue
            modes = [m for m in modes if m.key in wanted]
        if o.modes:
            modes = [m for m in modes if any(fnmatch.fnmatch(m.key, p) for p in o.modes)]
        if modes:
            chosen.append((entry, modes))
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the few runs CI makes")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="inputs whose name holds NAME"
    )
    parser.add_argument(
        "--modes",
        action="append",
        metavar="GLOB",
        help="runs whose key matches ('CLI --untrusted *')",
    )
    parser.add_argument("--first", type=int, help="only each input's first N runs (by priority)")
    parser.add_argument("--no-corrupt", action="store_true", help="leave out the robustness corpus")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per run (60)")
    parser.add_argument(
        "--memory-cap", type=float, default=4.0, help="GiB per run before it is killed (4)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="inputs run at once (2)")
    parser.add_argument(
        "--peers", metavar="DIR", help="a folder with fickling/modelscan installed (pip --target)"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "RESULTS-security.md")
    parser.add_argument(
        "--record", type=Path, help="JSON lines of finished runs: appended to, and not rerun"
    )
    parser.add_argument(
        "--redo", action="store_true", help="rerun the selected runs even if --record has them"
    )
    parser.add_argument(
        "--render-only", action="store_true", help="write the table from --record, run nothing"
    )
    o = parser.parse_args(argv)
    o.memory_cap = int(o.memory_cap * GiB)
    started, load = time.monotonic(), os.getloadavg()
    entries, broken = corpus_cases.hostile(strict=False)
    recorded, scans, invocations = read_record(o.record)
    with tempfile.TemporaryDirectory(prefix="nnprobe-security-") as tmp:
        work = Path(tmp)
        if not o.quick and not o.no_corrupt:
            entries += corpus_cases.corrupt(work / "good")
        plan = select(entries, o)
        todo = [
            (entry, [m for m in modes if o.redo or (entry.name, m.key) not in recorded])
            for entry, modes in plan
        ]
        if o.render_only:
            todo = []
        todo = [(e, ms) for e, ms in todo if ms or (e.source != "corrupt" and e.name not in scans)]
        total = sum(len(modes) for _, modes in todo)
        print(f"{len(plan)} inputs, {total} runs to make, {o.jobs} at once", file=sys.stderr)
        done = [0]
        lock = threading.Lock()

        def one(item: tuple[corpus_cases.Entry, list[Mode]]) -> None:
            entry, modes = item
            for mode in modes:
                cell = run_cell(entry, mode, work, o)
                with lock:
                    recorded[(entry.name, mode.key)] = cell
                    append_record(o.record, {"cell": asdict(cell)})
                    done[0] += 1
                    flags = " ".join(problems(cell)) or "ok"
                    print(
                        f"[{done[0]}/{total}] {entry.name} {mode.key}: {cell.seconds:.1f} s, "
                        f"{mib(cell.peak)}, {flags}",
                        file=sys.stderr,
                        flush=True,
                    )
            if entry.source != "corrupt" and (o.redo or entry.name not in scans):
                scan = scan_peers(entry, work, o) or {}
                with lock:
                    scans[entry.name] = scan
                    append_record(o.record, {"scan": entry.name, "verdicts": scan})

        with ThreadPoolExecutor(max(1, o.jobs)) as pool:
            list(pool.map(one, todo))
    cells = [
        recorded[(entry.name, m.key)]
        for entry, modes in plan
        for m in modes
        if (entry.name, m.key) in recorded
    ]
    missing = sum(len(modes) for _, modes in plan) - len(cells)
    names = {entry.name for entry, _ in plan}
    scans = {name: verdicts for name, verdicts in scans.items() if verdicts and name in names}
    command = "python bench/security_bench.py" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    header = machine_header(load, time.monotonic() - started, total)
    if o.record is not None and not o.render_only:
        append_record(o.record, {"invocation": f"`{command}`: {header[0]}"})
        invocations.append(f"`{command}`: {header[0]}")
    if o.record is not None:
        header = [
            f"The {len(cells)} runs below were made by these invocations, kept in a record file "
            "(`--record`) as they finished:",
            "",
            *(f"- {line}" for line in invocations),
        ]
    if missing:
        header += [
            "",
            f"**{missing} runs of the full plan were not made** (left out of the table).",
        ]
    text = render(cells, scans, [e for e, _ in plan], broken, header, command)
    o.output.parent.mkdir(parents=True, exist_ok=True)
    o.output.write_text(text, encoding="utf-8")
    print(text.split("## Runs with a problem")[0], end="")
    print(f"wrote {o.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
