"""Does the language server keep answering, coalesce its work and converge under an editor's
load? Drives the real `nnprobe serve` over stdio (lsp_bench's client) in a trusted workspace of
realistic training scripts (the static fixtures and examples, cycled) plus a training script
whose run folder a `[tool.nnprobe.models]` entry maps to its model, and:

1. opens `--docs` documents;
2. types `--edits` keystrokes in bursts of 50 with short gaps (inserting and deleting characters
   at a cursor that now and then jumps to a random line of a random document; full-text sync,
   as the server asks);
3. has a training run's stand-in (bench/checkpoint_writer.py, its own process) write
   `--checkpoints` state_dicts of a digits MLP into the run folder back to back with
   `torch.save`, each announced by a didChangeWatchedFiles event as an editor's watcher would;
4. waits until every document's diagnostics are for its last version and the newest checkpoint's
   inspection has finished;

while a hover on the training script's fc1 line goes out every 100 ms from the first didOpen to
the end of step 4. It prints hover latency during the load beside an idle baseline (30 hovers on
the settled server), the inspections the worker actually ran for the checkpoints written (from
`nnprobe.probeStatus`), peak RSS (VmHWM) of the server, its lint process and its probe worker, and
whether every URI's final diagnostics equal those a fresh server publishes on the final state
(the final buffers opened once, one watcher event naming every checkpoint). Linux only (/proc).

This is a benchmark: it prints figures and exits 1 only when the final diagnostics differ.

    python bench/load_bench.py [--docs 200] [--edits 5000] [--checkpoints 100] [--quick]
                               [--debounce 200] [--seed 0] [--output FILE] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "tests"), str(ROOT / "tests" / "lsp")]

from lsp_bench import Client, mib, ms, percentile, render  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS-load.md"
SCRIPT_SOURCES = (ROOT / "tests" / "fixtures" / "static" / "scripts", ROOT / "examples")
MODELS = '[tool.nnprobe.models]\n"runs/*.pt" = "train.py:Net"\n'
BURST = 50
HOVER_EVERY_S = 0.1
IDLE_HOVERS = 30
TIMEOUT_S = 600.0
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_ ()=.,+*#"


@dataclass
class LoadClient(Client):
    """lsp_bench's client, also keeping the last diagnostics published on each URI."""

    latest: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    versions: dict[str, int | None] = field(default_factory=dict)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("method") == "textDocument/publishDiagnostics":
            params = message["params"]
            self.latest[params["uri"]] = params["diagnostics"]
            self.versions[params["uri"]] = params.get("version")
        super()._dispatch(message)

    @classmethod
    async def connect(cls, settings: dict[str, Any], env: dict[str, str]) -> LoadClient:
        client = await cls.start(settings, **env)
        assert isinstance(client, LoadClient)
        return client

    async def command(self, name: str) -> Any:
        return await self.request("workspace/executeCommand", {"command": name, "arguments": []})


@dataclass
class Buffer:
    uri: str
    lines: list[str]
    version: int = 1

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Workspace:
    root: Path
    buffers: list[Buffer]
    train: Buffer
    hover_line: int  # 0-based: the fc1 line of the training script
    runs: Path


def build_workspace(root: Path, documents: int) -> Workspace:
    from runtime_workspace import FC1_LINE, TRAIN

    sources = sorted(p for folder in SCRIPT_SOURCES for p in folder.glob("*.py"))
    (root / "pyproject.toml").write_text(MODELS, encoding="utf-8")
    train = root / "train.py"
    train.write_text(TRAIN, encoding="utf-8")
    buffers = [Buffer(train.as_uri(), TRAIN.split("\n"))]
    (root / "scripts").mkdir()
    for index in range(documents - 1):
        source = sources[index % len(sources)]
        path = root / "scripts" / f"s{index:03d}_{source.name}"
        text = source.read_text(encoding="utf-8")
        path.write_text(text, encoding="utf-8")
        buffers.append(Buffer(path.as_uri(), text.split("\n")))
    runs = root / "runs"
    runs.mkdir()
    return Workspace(root, buffers, buffers[0], FC1_LINE, runs)


def proc_status(pid: int) -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM); empty once the process is gone."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if value.strip().endswith("kB"):
                fields[name] = int(value.split()[0])
    except (OSError, ValueError):
        return {}
    return fields


def children(pid: int) -> dict[int, str]:
    """Direct children of `pid` and their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, ValueError, IndexError):
            continue
    return {child: cmd.decode(errors="replace") for child, cmd in found.items()}


@dataclass
class Peaks:
    """Peak resident memory per role, sampled from /proc while the processes live (a killed
    worker's peak is kept; its successor is a new pid)."""

    server_pid: int
    kib: dict[str, int] = field(default_factory=dict)
    pids: dict[str, set[int]] = field(default_factory=dict)

    def sample(self) -> None:
        roles = {self.server_pid: "server"}
        for child, cmd in children(self.server_pid).items():
            if "nnprobe.worker" in cmd:
                roles[child] = "worker"
            elif "multiprocessing" in cmd and "resource_tracker" not in cmd:
                roles[child] = "lint"
        for pid, role in roles.items():
            peak = proc_status(pid).get("VmHWM")
            if peak is not None:
                self.kib[role] = max(self.kib.get(role, 0), peak)
                self.pids.setdefault(role, set()).add(pid)

    def mib(self, role: str) -> float | None:
        return self.kib[role] / 1024 if role in self.kib else None


@dataclass
class Hovers:
    client: LoadClient
    uri: str
    line: int
    phase: str = "idle"  # what the load is doing when a hover is sent
    latencies: list[float] = field(default_factory=list)
    by_phase: dict[str, list[float]] = field(default_factory=dict)
    answered: int = 0  # with content (after the first probe)
    failed: int = 0

    async def one(self) -> None:
        phase, started = self.phase, time.perf_counter()
        try:
            result = await asyncio.wait_for(
                self.client.request(
                    "textDocument/hover",
                    {
                        "textDocument": {"uri": self.uri},
                        "position": {"line": self.line, "character": 10},
                    },
                ),
                TIMEOUT_S,
            )
        except TimeoutError:
            self.failed += 1
            return
        self.latencies.append(time.perf_counter() - started)
        self.by_phase.setdefault(phase, []).append(self.latencies[-1])
        if result:
            self.answered += 1

    async def every(self, interval: float, peaks: Peaks, stop: asyncio.Event) -> None:
        """A hover every `interval` seconds on a fixed schedule (not waiting for the last answer,
        as a cursor resting on a line does not), sampling memory on each tick."""
        pending: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not stop.is_set():
            pending.append(asyncio.create_task(self.one()))
            peaks.sample()
            tick += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, tick - loop.time()))
        await asyncio.gather(*pending)


def type_keystroke(rng: random.Random, buffer: Buffer, cursor: list[int]) -> None:
    """One keystroke at the cursor (line, column): a character typed, or a backspace (75/25)."""
    line, column = cursor
    text = buffer.lines[line]
    column = min(column, len(text))
    if rng.random() < 0.25 and column > 0:
        buffer.lines[line] = text[: column - 1] + text[column:]
        column -= 1
    else:
        buffer.lines[line] = text[:column] + rng.choice(ALPHABET) + text[column:]
        column += 1
    cursor[:] = [line, column]
    buffer.version += 1


async def edit_bursts(
    client: LoadClient, workspace: Workspace, edits: int, rng: random.Random
) -> float:
    """`edits` keystrokes in bursts of BURST, 2 ms apart, 50-150 ms between bursts; the cursor
    jumps to a random line of a random document on 1 keystroke in 5. Seconds taken."""
    started = time.perf_counter()
    buffer = rng.choice(workspace.buffers)
    cursor = [0, 0]
    for done in range(edits):
        if done % 5 == 0:
            buffer = rng.choice(workspace.buffers)
            line = rng.randrange(len(buffer.lines))
            cursor = [line, rng.randrange(len(buffer.lines[line]) + 1)]
        type_keystroke(rng, buffer, cursor)
        client.change(buffer.uri, buffer.version, buffer.text)
        await client.drain()
        if (done + 1) % BURST == 0:
            await asyncio.sleep(rng.uniform(0.05, 0.15))
        else:
            await asyncio.sleep(0.002)
    return time.perf_counter() - started


async def start_writer(runs: Path, count: int, gap_ms: float) -> asyncio.subprocess.Process:
    """bench/checkpoint_writer.py, trained and waiting for the word to write."""
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "checkpoint_writer.py"),
        str(runs),
        str(count),
        str(gap_ms),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert writer.stdout is not None
    line = await writer.stdout.readline()
    if line.strip() != b"ready":
        raise RuntimeError(f"the checkpoint writer said {line!r}")
    return writer


async def save_checkpoints(
    client: LoadClient, writer: asyncio.subprocess.Process, count: int
) -> tuple[list[Path], float]:
    """The writer's burst, each checkpoint announced as a Created file event once saved."""
    assert writer.stdin is not None and writer.stdout is not None
    started = time.perf_counter()
    writer.stdin.write(b"go\n")
    await writer.stdin.drain()
    paths = []
    for _ in range(count):
        path = Path((await writer.stdout.readline()).decode().strip())
        client.notify(
            "workspace/didChangeWatchedFiles", {"changes": [{"uri": path.as_uri(), "type": 1}]}
        )
        await client.drain()
        paths.append(path)
    elapsed = time.perf_counter() - started
    if await writer.wait() != 0:
        raise RuntimeError("the checkpoint writer failed")
    return paths, elapsed


async def until(check: Any, what: str, timeout: float = TIMEOUT_S) -> None:
    """Poll an async condition every 50 ms (a status request, not a sleep standing for work)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def behind(client: LoadClient, buffers: list[Buffer]) -> str:
    """The buffers whose last published version is not their own: what a timeout reports."""
    late = [(b.uri, client.versions.get(b.uri), b.version) for b in buffers]
    late = [entry for entry in late if entry[1] != entry[2]]
    return f"{len(late)} behind, e.g. " + ", ".join(f"{u} at {p} not {v}" for u, p, v in late[:3])


async def settled(client: LoadClient, workspace: Workspace, newest: Path) -> dict[str, Any]:
    """Wait until every buffer's diagnostics are for its last version and the newest
    checkpoint's inspection has ended with nothing running or held; the final probe status."""
    newest_uri = newest.as_uri()
    state: dict[str, Any] = {}

    async def static_done() -> bool:
        return all(client.versions.get(b.uri) == b.version for b in workspace.buffers)

    async def runtime_done() -> bool:
        state.update(await client.command("nnprobe.probeStatus"))
        finished = any(
            h["uri"] == newest_uri and h["outcome"] in ("done", "failed") for h in state["history"]
        )
        return finished and not state["running"] and not state["pending"]

    try:
        await until(static_done, "every document's diagnostics for its last version")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}: {behind(client, workspace.buffers)}") from None
    await until(runtime_done, f"the inspection of {newest.name}")
    return state


def open_all(client: LoadClient, buffers: list[Buffer]) -> None:
    for buffer in buffers:
        client.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": buffer.uri,
                    "languageId": "python",
                    "version": buffer.version,
                    "text": buffer.text,
                }
            },
        )


def normalised(diagnostics: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(d, sort_keys=True) for d in diagnostics)


async def fresh_run(
    workspace: Workspace, checkpoints: list[Path], settings: dict[str, Any], env: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """The final diagnostics of a new server shown the final state at once."""
    client = await LoadClient.connect(settings, env)
    await client.initialize(workspace.root)
    final = [Buffer(b.uri, b.lines, b.version) for b in workspace.buffers]
    for buffer in final:
        buffer.version = 1
    open_all(client, final)
    client.notify(
        "workspace/didChangeWatchedFiles",
        {"changes": [{"uri": p.as_uri(), "type": 1} for p in checkpoints]},
    )
    await client.drain()
    await settled(client, Workspace(workspace.root, final, final[0], 0, workspace.runs),
                  checkpoints[-1])  # fmt: skip
    latest = dict(client.latest)
    await client.stop()
    return latest


@dataclass
class Result:
    docs: int
    edits: int
    checkpoints: int
    rows: list[tuple[str, str]]
    hover_p99_s: float
    hovers_answered: int
    hovers_with_content: int
    hovers_failed: int
    inspections: int
    differing: int
    compared: int
    pending_messages: int | None


async def run(args: argparse.Namespace) -> Result:
    rng = random.Random(args.seed)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="nnprobe-load-bench-") as folder:
        root = Path(folder) / "workspace"
        root.mkdir()
        env = {"NNPROBE_CACHE_DIR": str(Path(folder) / "cache")}
        settings = {"debounce": args.debounce, "trusted": True}
        workspace = build_workspace(root, args.docs)
        writer = await start_writer(workspace.runs, args.checkpoints, args.checkpoint_every)
        client = await LoadClient.connect(settings, env)
        await client.initialize(root)
        peaks = Peaks(client.process.pid)
        hovers = Hovers(client, workspace.train.uri, workspace.hover_line)
        stop = asyncio.Event()
        ticker = asyncio.create_task(hovers.every(HOVER_EVERY_S, peaks, stop))
        rss: list[tuple[str, float | None]] = []

        def note(phase: str) -> None:
            kib = proc_status(client.process.pid).get("VmRSS")
            rss.append((phase, kib / 1024 if kib else None))

        note("after initialize")
        load_started = time.perf_counter()
        hovers.phase = "opening"
        open_all(client, workspace.buffers)
        await client.drain()

        async def all_opened() -> bool:
            return all(client.versions.get(b.uri) == 1 for b in workspace.buffers)

        try:
            await until(all_opened, "the first diagnostics of every document", args.timeout)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {behind(client, workspace.buffers)}") from None
        opened_s = time.perf_counter() - load_started
        note(f"after opening {args.docs} documents")
        hovers.phase = "typing"
        typing_s = await edit_bursts(client, workspace, args.edits, rng)
        note(f"after {args.edits} edits")
        hovers.phase = "checkpoints and settling"
        saving_began = time.perf_counter()
        paths, saving_s = await save_checkpoints(client, writer, args.checkpoints)
        last_saved = saving_began + saving_s  # the last one announced, before the writer exits
        state = await settled(client, workspace, paths[-1])
        settle_s = time.perf_counter() - last_saved
        load_s = time.perf_counter() - load_started
        stop.set()
        await ticker
        note("after the load settled")
        info = await client.command("nnprobe.debugInfo")
        peaks.sample()
        during = list(hovers.latencies)
        idle = Hovers(client, workspace.train.uri, workspace.hover_line)
        for _ in range(IDLE_HOVERS):
            await idle.one()
            await asyncio.sleep(HOVER_EVERY_S)
        published = len(client.published)
        final = dict(client.latest)
        await client.stop()

        fresh = await fresh_run(workspace, paths, settings, env)

    uris = sorted(final.keys() | fresh.keys())
    differing = [u for u in uris if normalised(final.get(u, [])) != normalised(fresh.get(u, []))]
    history = state["history"]
    outcomes: dict[str, int] = {}
    for entry in history:
        outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
    inspected = sorted({Path(h["uri"]).name for h in history if h["outcome"] == "done"})
    idle_p50 = statistics.median(idle.latencies)
    p50, p99 = percentile(during, 0.5), percentile(during, 0.99)
    diagnostics = sum(len(d) for d in final.values())
    rows += [
        (
            "load",
            f"{args.docs} documents opened ({opened_s:.1f} s to all first diagnostics), "
            f"{args.edits} keystrokes in bursts of {BURST} ({typing_s:.1f} s), "
            f"{args.checkpoints} checkpoints saved "
            + (f"{args.checkpoint_every:g} ms apart" if args.checkpoint_every else "back to back")
            + f" ({saving_s:.2f} s); "
            f"debounce {args.debounce:g} ms; {load_s:.1f} s from the first didOpen to settled, "
            f"{settle_s:.1f} s from the last save",
        ),
        (
            f"hover every {HOVER_EVERY_S * 1000:.0f} ms during the load ({len(during)} answered, "
            f"{hovers.answered} with probe statistics, {hovers.failed} unanswered)",
            f"p50 {ms(p50)}, p99 {ms(p99)}, max {ms(max(during))}",
        ),
        (
            "hover latency by phase: p50 / p99 / max (count)",
            "; ".join(
                f"{phase}: {ms(percentile(v, 0.5))} / {ms(percentile(v, 0.99))} / {ms(max(v))} "
                f"({len(v)})"
                for phase, v in hovers.by_phase.items()
            ),
        ),
        (
            f"hover on the settled server ({IDLE_HOVERS}, idle baseline)",
            f"p50 {ms(idle_p50)}, p99 {ms(percentile(idle.latencies, 0.99))}",
        ),
        (
            "ratio: hover p50 / p99 under load over idle p50",
            f"{p50 / idle_p50:.1f}x / {p99 / idle_p50:.1f}x",
        ),  # fmt: skip
        (
            f"checkpoint inspections for {args.checkpoints} checkpoints (coalescing)",
            f"{len(history)} started: "
            + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
            + f"; worker requests {state['jobs']} (weights+activations, then gradients); "
            f"inspected: {', '.join(inspected) or 'none'}",
        ),
        (
            "publishDiagnostics received during the load",
            f"{published} for {args.docs + args.edits} document versions and "
            f"{args.checkpoints} checkpoints (superseded results dropped)",
        ),
        (
            "peak RSS (VmHWM): server / lint process / probe worker",
            f"{mib(peaks.mib('server'))} / {mib(peaks.mib('lint'))} / {mib(peaks.mib('worker'))}"
            f" ({len(peaks.pids.get('worker', ()))} worker process(es))",
        ),
        ("server RSS by phase", ", ".join(f"{p}: {mib(v)}" for p, v in rss)),
        (
            "messages pygls still holds as awaiting completion after the load",
            str(info.get("pendingMessages")),
        ),
        (
            "final diagnostics equal a fresh server's on the final state",
            ("yes" if not differing else "NO")
            + f": {len(uris) - len(differing)} of {len(uris)} URIs equal, "
            f"{len(differing)} differ ({diagnostics} diagnostics)"
            + (f"; first: {differing[0]}" if differing else ""),
        ),
    ]
    return Result(
        args.docs,
        args.edits,
        args.checkpoints,
        rows,
        p99,
        len(during),
        hovers.answered,
        hovers.failed,
        len(history),
        len(differing),
        len(uris),
        info.get("pendingMessages"),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=200, help="open documents")
    parser.add_argument("--edits", type=int, default=5000, help="keystrokes, in bursts of 50")
    parser.add_argument("--checkpoints", type=int, default=100, help="checkpoints in the burst")
    parser.add_argument(
        "--checkpoint-every", type=float, default=0.0, help="ms between saves (0: a burst)"
    )
    parser.add_argument("--debounce", type=float, default=200.0, help="the server's, in ms")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timeout", type=float, default=TIMEOUT_S, help="seconds to wait for the first diagnostics"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 12 documents, 300 edits, 6 checkpoints"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="markdown results file")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write the counts as JSON here (tests)")
    args = parser.parse_args()
    if args.quick:
        args.docs, args.edits, args.checkpoints = 12, 300, 6
    result = asyncio.run(run(args))
    report = render(result.rows)
    sys.stdout.write(report)
    if args.json is not None:
        counts = {k: v for k, v in dataclasses.asdict(result).items() if k != "rows"}
        args.json.write_text(json.dumps(counts, indent=2), encoding="utf-8")
    if not args.no_write:
        header = (
            "# Language server under load\n\n"
            f"`python bench/load_bench.py --docs {result.docs} --edits {result.edits} "
            f"--checkpoints {result.checkpoints}` (issue 8); its docstring says what each row "
            "measures.\n\n"
        )
        args.output.write_text(header + report, encoding="utf-8")
    return 0 if result.differing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
