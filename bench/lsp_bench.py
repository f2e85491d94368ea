"""How the language server feels in an editor, measured over its real stdio channel.

Drives `python -m nnprobe serve` with a minimal LSP client (asyncio streams, JSON-RPC framing, no
test framework in between) the way an editor does, and prints:

- time from spawning the server to its `initialize` reply (fresh process each repetition), and
  the floor under it: a bare interpreter importing pygls and lsprotocol;
- the server's resident memory after initialize and after opening 100 training scripts, and
  that of its lint process (the child the static checks run in);
- didChange -> publishDiagnostics latency on a ~500-line script with `debounce` 0, beside the time
  the same check takes in-process (`check_text`), so the protocol's share shows as a ratio;
- a burst of 1,000 back-to-back edits with a code-action request (a cheap request every editor
  sends while the cursor moves) every 20 edits: its latency during the burst, how many superseded
  results were dropped, and how long after the last edit its diagnostics arrived. Run at
  debounce 0 (the server checks as fast as it can: worst case) and at the default 200 ms.

- runtime diagnostics: from the start of `torch.save` of a small CNN's state_dict into a trusted
  workspace (plus the didChangeWatchedFiles event an editor's watcher sends) to its runtime
  diagnostics (the copies on the training script go out in the same step), once cold (worker
  not started, empty ONNX export cache) and then for further checkpoints of the same
  architecture (warm worker, cached export); to the first diagnostics (weights, activations) and
  to the complete ones (the gradient probe's optimizer steps come second). Needs
  torch; `debounce` 0, so the default 200 ms pause comes on top.

This is a benchmark, not a test: it prints figures and never fails on them.

    python bench/lsp_bench.py [--repeat 5] [--documents 100] [--edits 1000] [--checkpoints 5]
                              [--no-gradients] [--output FILE] [--baseline SRC] [--initialize-only]

`--baseline SRC` times another checkout's server (e.g. `git worktree add /tmp/old HEAD~3`, then
`--baseline /tmp/old/src`) started alternately with this one, so a change's effect on start-up
is measured side by side on the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "nnprobe", "serve"]
RESULTS = ROOT / "bench" / "RESULTS-lsp.md"

BUG = """

def buggy_step(model, x, y, criterion):
    return criterion(torch.softmax(model(x), dim=1), y)
"""


def generate_script(target_lines: int) -> str:
    """static_bench's generated training script (varied models, optimizers, loops) plus one NP104,
    so every check has real work and the diagnostics are never empty."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from static_bench import generate_script as generate
    finally:
        sys.path.pop(0)
    text: str = generate(target_lines - BUG.count("\n"))
    return text + BUG


def rss_mib(pid: int) -> float | None:
    """Resident set size from /proc (Linux); None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Published:
    uri: str
    version: int | None
    count: int
    at: float


@dataclass
class Client:
    """Just enough of an editor: framing, requests, and publishDiagnostics bookkeeping."""

    process: asyncio.subprocess.Process
    settings: dict[str, Any]
    next_id: int = 0
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    published: list[Published] = field(default_factory=list)
    waiters: list[tuple[Callable[[Published], bool], asyncio.Future[Published]]] = field(
        default_factory=list
    )
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, settings: dict[str, Any], **extra_env: str) -> Client:
        # Byte-code caching on, as in an installed package (pip writes .pyc files at install),
        # even where the environment turns it off for development.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.update(extra_env)
        process = await asyncio.create_subprocess_exec(
            *SERVER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
            limit=2**24,
        )
        client = cls(process, settings)
        client.reader = asyncio.create_task(client._read())
        return client

    def _write(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    async def drain(self) -> None:
        assert self.process.stdin is not None
        await self.process.stdin.drain()

    def notify(self, method: str, params: Any) -> None:
        self._write({"method": method, "params": params})

    async def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        self._write({"id": self.next_id, "method": method, "params": params})
        await self.drain()
        return await future

    def expect(self, predicate: Callable[[Published], bool]) -> asyncio.Future[Published]:
        future: asyncio.Future[Published] = asyncio.get_running_loop().create_future()
        self.waiters.append((predicate, future))
        return future

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                header = await stream.readline()
                if not header:
                    return
                if header in (b"\r\n", b"\n"):
                    break
                name, _, value = header.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(await stream.readexactly(length))
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:
            future = self.pending.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message.get("result"))
        elif "id" in message:  # a request from the server
            result: Any = None
            if method == "workspace/configuration":
                result = [self.settings for _ in message["params"]["items"]]
            self._write({"id": message["id"], "result": result})
        elif method == "textDocument/publishDiagnostics":
            params = message["params"]
            event = Published(
                params["uri"],
                params.get("version"),
                len(params["diagnostics"]),
                time.perf_counter(),
            )
            self.published.append(event)
            for waiter in list(self.waiters):
                predicate, future = waiter
                if predicate(event) and not future.done():
                    future.set_result(event)
                    self.waiters.remove(waiter)

    async def initialize(self, root: Path) -> None:
        await self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": {
                    "workspace": {
                        "configuration": True,
                        "workspaceEdit": {"documentChanges": True},
                        "didChangeWatchedFiles": {"dynamicRegistration": True},
                    },
                    "textDocument": {"publishDiagnostics": {"versionSupport": True}},
                },
                "initializationOptions": self.settings,
            },
        )
        self.notify("initialized", {})
        await self.drain()

    def open(self, uri: str, text: str) -> None:
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )

    def change(self, uri: str, version: int, text: str) -> None:
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"text": text}],
            },
        )

    def configure(self, **settings: Any) -> None:
        self.settings = {**self.settings, **settings}
        self.notify("workspace/didChangeConfiguration", {"settings": None})

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.request("shutdown", None), 10)
            self.notify("exit", None)
            await self.drain()
            await asyncio.wait_for(self.process.wait(), 10)
        except (TimeoutError, ConnectionError):
            self.process.kill()
        if self.reader is not None:
            self.reader.cancel()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0.0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Startup:
    """Spawn-to-reply seconds, and the server's CPU seconds at its reply (what it costs on an
    idle machine), for this checkout and the baseline; the pygls + lsprotocol floor."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "baseline": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"ours": [], "baseline": []})
    floor: list[float] = field(default_factory=list)
    memory: float | None = None


async def time_initialize(root: Path, repeat: int, baseline: Path | None = None) -> Startup:
    """Fresh servers started `repeat` times; with `baseline` (another checkout's src folder),
    that code's servers too, started alternately with ours so both see the same machine. Also
    the floor nnprobe cannot go below: a bare interpreter importing pygls and lsprotocol (with
    the cyclic garbage collector off, as the server imports them)."""
    result = Startup()
    for attempt in range(repeat + 1):
        for label, src in (
            (("ours", None), ("baseline", baseline)) if baseline else (("ours", None),)
        ):
            started = time.perf_counter()
            extra = {"PYTHONPATH": str(src)} if src else {}
            client = await Client.start({"debounce": 0}, **extra)
            await client.initialize(root)
            took = time.perf_counter() - started
            if attempt:  # the first start only writes the byte-code caches
                result.wall[label].append(took)
                result.cpu[label].append(cpu_seconds(client.process.pid))
            if src is None:
                result.memory = rss_mib(client.process.pid)
            await client.stop()
        started = time.perf_counter()
        bare = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import gc; gc.disable(); import lsprotocol.types, pygls.lsp.server",
            cwd=ROOT,
        )
        await bare.wait()
        if attempt:
            result.floor.append(time.perf_counter() - started)
    return result


async def open_many(
    root: Path, text: str, count: int
) -> tuple[float | None, float | None, float | None, float]:
    client = await Client.start({"debounce": 0})
    await client.initialize(root)
    before = rss_mib(client.process.pid)
    uris = {(root / f"doc_{i}.py").as_uri() for i in range(count)}
    done = asyncio.gather(*(client.expect(lambda p, u=uri: p.uri == u) for uri in uris))
    started = time.perf_counter()
    for uri in sorted(uris):
        client.open(uri, text)
    await client.drain()
    await done
    elapsed = time.perf_counter() - started
    after = rss_mib(client.process.pid)
    info = await client.request(
        "workspace/executeCommand", {"command": "nnprobe.debugInfo", "arguments": []}
    )
    lint = rss_mib(info["lintPid"]) if info.get("lintPid") else None
    await client.stop()
    return before, after, lint, elapsed


async def change_latency(root: Path, text: str, samples: int) -> list[float]:
    client = await Client.start({"debounce": 0})
    await client.initialize(root)
    uri = (root / "latency.py").as_uri()
    first = client.expect(lambda p: p.uri == uri)
    client.open(uri, text)
    await client.drain()
    await first
    latencies = []
    for version in range(2, samples + 2):
        arrived = client.expect(lambda p, v=version: p.uri == uri and p.version == v)
        started = time.perf_counter()
        client.change(uri, version, text + f"\n# edit {version}\n")
        await client.drain()
        event = await arrived
        latencies.append(event.at - started)
    await client.stop()
    return latencies


@dataclass
class Burst:
    debounce_ms: float
    edits: int
    send_s: float
    request_latencies: list[float]
    published: int
    settle_s: float


async def burst(root: Path, text: str, edits: int, debounce_ms: float) -> Burst:
    client = await Client.start({"debounce": debounce_ms})
    await client.initialize(root)
    uri = (root / f"burst_{int(debounce_ms)}.py").as_uri()
    first = client.expect(lambda p: p.uri == uri)
    client.open(uri, text)
    await client.drain()
    await first
    before = len(client.published)
    final = edits + 1
    last = client.expect(lambda p: p.uri == uri and p.version == final)
    latencies: list[float] = []
    pending: list[asyncio.Task[None]] = []

    async def code_action(line: int) -> None:
        started = time.perf_counter()
        await client.request(
            "textDocument/codeAction",
            {
                "textDocument": {"uri": uri},
                "range": {
                    "start": {"line": line, "character": 0},
                    "end": {"line": line, "character": 0},
                },
                "context": {"diagnostics": []},
            },
        )
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    for version in range(2, final + 1):
        client.change(uri, version, text + f"\n# edit {version}\n")
        if version % 20 == 0:
            pending.append(asyncio.create_task(code_action(version % 400)))
        await client.drain()
    sent = time.perf_counter()
    await last
    settle = time.perf_counter() - sent
    await asyncio.gather(*pending)
    published = len([p for p in client.published[before:] if p.uri == uri])
    await client.stop()
    return Burst(debounce_ms, edits, sent - started, latencies, published, settle)


CNN_SCRIPT = """\
import torch
from torch import nn


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(self.pool(x).flatten(1))


if __name__ == "__main__":
    model = SmallCNN()
    for epoch in range(10):
        torch.save(model.state_dict(), f"runs/cnn_{epoch}.pt")
"""


async def runtime_latency(
    root: Path, checkpoints: int, gradients: bool = True
) -> list[tuple[float, float | None]] | None:
    """Per checkpoint (the first one cold), seconds from its save to its first runtime
    diagnostics (weights and activations) and to the complete ones (gradients too; None when
    `gradients` is off and the gradient rules are ignored); None without torch."""
    try:
        import torch
    except ImportError:
        return None
    workspace = root / "runtime"
    (workspace / "runs").mkdir(parents=True)
    script = workspace / "train.py"
    script.write_text(CNN_SCRIPT, encoding="utf-8")
    ignore = "" if gradients else 'ignore = ["NP4"]\n'
    (workspace / "pyproject.toml").write_text(
        f"[tool.nnprobe]\ninput-shape = [3, 32, 32]\n{ignore}", encoding="utf-8"
    )
    definitions: dict[str, Any] = {"__name__": "bench_cnn"}
    exec(compile(CNN_SCRIPT, str(script), "exec"), definitions)
    client = await Client.start(
        {"debounce": 0, "trusted": True}, NNPROBE_CACHE_DIR=str(root / "export-cache")
    )
    await client.initialize(workspace)
    times: list[tuple[float, float | None]] = []
    for epoch in range(checkpoints + 1):
        torch.manual_seed(epoch)
        model = definitions["SmallCNN"]()
        path = workspace / "runs" / f"cnn_{epoch}.pt"
        uri = path.as_uri()
        first = client.expect(lambda p, u=uri: p.uri == u)
        started = time.perf_counter()
        torch.save(model.state_dict(), path)
        client.notify(
            "workspace/didChangeWatchedFiles",
            {"changes": [{"uri": uri, "type": 1}]},
        )
        await client.drain()
        early = await asyncio.wait_for(first, 300)
        if not gradients:
            times.append((early.at - started, None))
            continue
        complete = await asyncio.wait_for(
            client.expect(lambda p, u=uri, t=early.at: p.uri == u and p.at > t), 300
        )
        times.append((early.at - started, complete.at - started))
    await client.stop()
    return times


def in_process(text: str, repeat: int) -> list[float]:
    from nnprobe.core.config import Config
    from nnprobe.inspectors.script.handler import check_text

    config = Config.default()
    check_text(text, "latency.py", config)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        check_text(text, "latency.py", config)
        times.append(time.perf_counter() - started)
    return times


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def mib(value: float | None) -> str:
    return f"{value:.1f} MiB" if value is not None else "n/a"


async def run(args: argparse.Namespace) -> list[tuple[str, str]]:
    text = generate_script(500)
    lines = text.count("\n")
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="nnprobe-lsp-bench-") as folder:
        root = Path(folder)
        startup = await time_initialize(root, args.repeat, args.baseline)
        init, init_baseline = startup.wall["ours"], startup.wall["baseline"]
        rows.append(
            (
                f"initialize (spawn to reply, median of {args.repeat})",
                f"{ms(statistics.median(init))} (max {ms(max(init))})",
            )
        )
        rows.append(
            (
                "server CPU time (user + system) at its initialize reply",
                f"{ms(statistics.median(startup.cpu['ours']))}",
            )
        )
        if init_baseline:
            cpu_before = startup.cpu["baseline"]
            rows.append(
                (
                    f"baseline {args.baseline}, started alternately with ours: initialize / CPU",
                    f"{ms(statistics.median(init_baseline))} (max {ms(max(init_baseline))}) / "
                    f"{ms(statistics.median(cpu_before))}; ours / baseline = "
                    f"{statistics.median(init) / statistics.median(init_baseline):.2f}x wall, "
                    f"{statistics.median(startup.cpu['ours']) / statistics.median(cpu_before):.2f}x"
                    " CPU",
                )
            )
        rows.append(
            (
                "floor: a bare interpreter importing pygls + lsprotocol, GC off as in the server "
                "(spawn to exit)",
                f"{ms(statistics.median(startup.floor))} (max {ms(max(startup.floor))})",
            )
        )
        rss_init = startup.memory
        rows.append(("RSS after initialize", mib(rss_init)))
        if args.initialize_only:
            return rows
        before, after, lint, opened = await open_many(root, text, args.documents)
        rows.append(
            (
                f"RSS after opening {args.documents} documents of {lines} lines",
                f"{mib(after)} (+{mib((after or 0) - (before or 0))}; all published in "
                f"{opened:.2f} s)",
            )
        )
        rows.append(("RSS of the lint process (a child: static checks run there)", mib(lint)))
        latency = await change_latency(root, text, args.samples)
        direct = in_process(text, args.samples)
        p50, p95 = percentile(latency, 0.5), percentile(latency, 0.95)
        rows.append(
            (
                f"didChange -> publishDiagnostics, {lines}-line script, debounce 0 "
                f"({args.samples} edits)",
                f"p50 {ms(p50)}, p95 {ms(p95)}",
            )
        )
        direct_p50 = statistics.median(direct)
        rows.append(
            (
                "same check in-process (check_text)",
                f"p50 {ms(direct_p50)}, p95 {ms(percentile(direct, 0.95))}",
            )
        )
        rows.append(("ratio: LSP p50 / in-process p50", f"{p50 / direct_p50:.2f}x"))
        for debounce in (0.0, 200.0):
            result = await burst(root, text, args.edits, debounce)
            lat = result.request_latencies
            rows.append(
                (
                    f"burst of {result.edits} edits, debounce {debounce:g} ms: codeAction latency "
                    f"({len(lat)} requests)",
                    f"p50 {ms(percentile(lat, 0.5))}, p95 {ms(percentile(lat, 0.95))}, "
                    f"max {ms(max(lat))}",
                )
            )
            rows.append(
                (
                    f"burst, debounce {debounce:g} ms: edits sent in / results published / "
                    "last edit to its diagnostics",
                    f"{result.send_s:.2f} s / {result.published} of {result.edits} "
                    f"(the rest superseded) / {ms(result.settle_s)}",
                )
            )
        runtime = await runtime_latency(root, args.checkpoints, args.gradients)
        label = "checkpoint write -> runtime diagnostics, small CNN"
        if runtime is None:
            rows.append((label, "not measured: torch is not installed"))
        else:
            cold, cached = runtime[0], runtime[1:]
            first = ms(cold[0]) + (f" / {ms(cold[1])}" if cold[1] is not None else "")
            rows.append(
                (
                    f"{label}, first (worker start + ONNX export): weights and activations"
                    + (" / with gradients" if cold[1] is not None else ""),
                    first,
                )
            )
            early = [c[0] for c in cached]
            complete = [c[1] for c in cached if c[1] is not None]
            if early:
                rows.append(
                    (
                        f"{label}, cached architecture, warm worker ({len(cached)} checkpoints): "
                        "weights and activations",
                        f"p50 {ms(statistics.median(early))}, max {ms(max(early))}",
                    )
                )
            if complete:
                rows.append(
                    (
                        f"{label}, cached architecture, warm worker: with gradients (40 "
                        "optimizer steps on 64 inputs)",
                        f"p50 {ms(statistics.median(complete))}, max {ms(max(complete))}",
                    )
                )
    return rows


def render(rows: list[tuple[str, str]]) -> str:
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"
    )
    table = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return f"Measured on {machine}.\n\n" + "\n".join(table) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="server starts to time")
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--samples", type=int, default=50, help="edits timed one at a time")
    parser.add_argument("--edits", type=int, default=1000, help="edits in each burst")
    parser.add_argument(
        "--checkpoints", type=int, default=5, help="cached-architecture checkpoints to time"
    )
    parser.add_argument(
        "--no-gradients",
        dest="gradients",
        action="store_false",
        help="ignore the gradient rules in the runtime part (time weights and activations only)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="SRC",
        help="another checkout's src folder: its initialize is timed alternately with ours",
    )
    parser.add_argument(
        "--initialize-only",
        action="store_true",
        help="time start-up only (printed, not written to the results file)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown results file")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    report = render(rows)
    sys.stdout.write(report)
    if not args.no_write and not args.initialize_only:
        header = (
            "# Language server benchmark\n\n"
            "`python bench/lsp_bench.py` drives `nnprobe serve` over stdio like an editor; see "
            "its docstring for what each row measures. Targets from issue 4: initialize < 0.5 s, "
            "RSS after initialize < 80 MB, static diagnostics p95 < 50 ms after the debounce, a "
            "request answered in < 100 ms during a burst of edits, runtime diagnostics for a small "
            "CNN checkpoint < 2 s after the write with a warm worker.\n\n"
        )
        args.output.write_text(header + report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
