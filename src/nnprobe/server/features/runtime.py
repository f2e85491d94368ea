"""Runtime diagnostics in the editor: checkpoints written into the workspace are inspected in the
probe worker, and what it finds lands on the checkpoint and on the training script's layer lines;
hover and code lenses show the last probe's statistics; `nnprobe.inspect` on a checkpoint runs it.

Scheduling, in the order a training run writes files:
- file events (the client's watcher, else polling) are held per folder for `debounce`; when the
  folder falls quiet only its newest checkpoint is inspected (a run saving every epoch is probed
  once, on its latest file);
- a newer event for the same file, or a newer file in the same folder, supersedes the job under
  way: a job still waiting (for the worker, for its start) stops; one whose request is in the
  worker finishes that request (weights and activations take a fraction of a second), skips its
  later phases and publishes nothing, and then the folder's newest checkpoint is inspected,
  coalescing everything saved meanwhile. Killing the worker would cost its restart (seconds of
  imports) on every save of a run saving faster than a probe; it is kept for a request that has
  run `supersededGrace` seconds while superseded, and for a user's cancel. Jobs for other
  folders queue;
- a job has `probeTimeout` seconds and `probeMemory` MB; a crash or an overrun is NP904 on the
  checkpoint and the next job starts a fresh worker.

Diagnostics are stored under "nnprobe.runtime" on the checkpoint and under
"nnprobe.runtime:<folder>" on the script, so static, log and runtime results never erase each
other, and the script shows the newest checkpoint of each run folder. Edits of the script move
those copies and the records' layer lines (hover, code lens) with the text until the next probe.
Untrusted workspaces get the weight rules (and ONNX probes) only: the worker never imports
workspace code nor unpickles, and the user is told once why probes are missing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types

from nnprobe.core.engine import Report, internal_finding
from nnprobe.core.files import link_outside, outside_message
from nnprobe.core.finding import Finding
from nnprobe.probe.jobs import finding_from_dict
from nnprobe.probe.runtime import error_finding
from nnprobe.probe.worker_client import default_memory_budget
from nnprobe.server import checkpoint_watch, payloads

# A runtime import: pygls resolves command handlers' annotations to convert their arguments.
from nnprobe.server.app import NnprobeServer  # noqa: E402  (after register_key's users)
from nnprobe.server.features.commands import INSPECT, uri_argument
from nnprobe.server.line_map import LineMap
from nnprobe.server.probe_results import ProbeRecord, hover_markdown, lens_title, newest_for
from nnprobe.server.probe_worker import ProbeWorker, WorkerError
from nnprobe.server.settings import Settings, register_key

log = logging.getLogger("nnprobe.server.runtime")

SOURCE = "nnprobe.runtime"
WATCH_ID = "nnprobe-checkpoints"
STATUS = "nnprobe.probeStatus"
EMBEDDINGS = "nnprobe.embeddingPreview"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_PROGRESS_DELAY_MS = 500.0
# Seconds a superseded request may run before the worker is killed to move on: several times a
# worker's restart (its imports: 2-5 s), so a slow but finishing probe is not thrown away for it.
DEFAULT_SUPERSEDED_GRACE_S = 30.0
TRUST_MESSAGE = (
    "nnprobe: runtime probes (activations, gradients) of state_dict checkpoints need a trusted "
    "workspace, because building the model imports your code; only the weight rules ran. Trust "
    "the workspace to probe them (in VS Code: Manage Workspace Trust; in other editors: the "
    "`trusted` setting)."
)


def _number(low: float, high: float, unit: str) -> Any:
    def validate(value: object) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise ValueError(f"must be a number of {unit} between {low:g} and {high:g}")
        return float(value)

    return validate


register_key("pollInterval", _number(100, 600_000, "milliseconds"))
register_key("probeTimeout", _number(1, 86_400, "seconds"))
register_key("probeMemory", _number(16, 10**7, "megabytes"))
register_key("progressDelay", _number(0, 60_000, "milliseconds"))
register_key("supersededGrace", _number(0, 86_400, "seconds"))


@dataclass
class Job:
    uri: str
    path: Path
    task: asyncio.Task[list[Finding]] | None = None
    started: float = field(default_factory=time.time)
    outcome: str = "queued"  # queued | running | done | failed | cancelled | superseded
    superseded: bool = False  # a newer checkpoint replaces it: nothing of it is published
    killed: bool = False  # superseded, and its request ran past the grace: the worker was killed
    watchdog: asyncio.Task[None] | None = None


class RuntimeProbes:
    def __init__(self, server: NnprobeServer) -> None:
        self.server = server
        self.worker = ProbeWorker()
        self.records: dict[str, ProbeRecord] = {}  # checkpoint uri -> its last probe
        self.history: list[dict[str, Any]] = []  # every job: uri, outcome (status command)
        self._running: dict[str, Job] = {}  # checkpoint uri -> its current job
        self._pending: dict[Path, set[Path]] = {}  # folder -> checkpoints changed in the pause
        self._queued: dict[Path, str] = {}  # folder -> its newest, waiting for a superseded job
        self._timers: dict[Path, asyncio.Task[None]] = {}
        self._script_of: dict[str, str] = {}  # copy source key -> script uri it was published on
        self._registered = False
        self._poller: asyncio.Task[None] | None = None
        self._told_trust = False

    # ---- settings, registration, polling

    def on_settings(self, old: Settings, new: Settings) -> None:
        if not self._registered:
            self._registered = True
            asyncio.ensure_future(self._register())
        if old.interpreter != new.interpreter and self.worker.running:
            self.worker.close()
        if new.trusted and not old.trusted:
            self._told_trust = False
            for uri in list(self.records):  # probes refused before now may run
                self.start(uri)

    def _can_register(self) -> bool:
        capabilities = self.server.client_capabilities
        workspace = capabilities.workspace if capabilities else None
        watched = workspace.did_change_watched_files if workspace else None
        return bool(watched is not None and watched.dynamic_registration)

    async def _register(self) -> None:
        if not self._can_register():
            log.info("the client cannot watch files: polling for checkpoints")
            self._poller = asyncio.ensure_future(self._poll())
            return
        registration = types.Registration(
            id=WATCH_ID,
            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                watchers=[types.FileSystemWatcher(glob_pattern=checkpoint_watch.GLOB)]
            ),
        )
        try:
            await self.server.client_register_capability_async(
                types.RegistrationParams(registrations=[registration])
            )
        except Exception as exc:
            log.warning("could not register the checkpoint watcher (%s): polling instead", exc)
            self._poller = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        root = self.server.root
        if root is None:
            return
        config = self.server.configs.config_for(None)
        snapshot = await asyncio.to_thread(checkpoint_watch.scan, root, config.is_excluded)
        while True:
            interval = self.server.settings.extra.get(
                "pollInterval", checkpoint_watch.DEFAULT_POLL_MS
            )
            await asyncio.sleep(float(interval) / 1000.0)
            config = self.server.configs.config_for(None)
            try:
                new = await asyncio.to_thread(checkpoint_watch.scan, root, config.is_excluded)
            except OSError as exc:
                log.warning("polling the workspace failed: %s", exc)
                continue
            events = checkpoint_watch.changes(snapshot, new)
            snapshot = new
            if events:
                self.on_files(events)

    # ---- file events

    def on_files(self, events: Sequence[types.FileEvent]) -> None:
        for event in events:
            path = self.server.path_of(event.uri)
            if path is None or not checkpoint_watch.is_checkpoint(path):
                continue
            if self.server.configs.config_for(path).is_excluded(path):
                continue
            if event.type == types.FileChangeType.Deleted:
                self.forget(event.uri)
                continue
            self._hold(path)

    def _hold(self, path: Path) -> None:
        folder = path.parent
        timer = self._timers.pop(folder, None)
        if timer is not None:
            timer.cancel()
        self._pending.setdefault(folder, set()).add(path)
        self._timers[folder] = asyncio.ensure_future(self._after_pause(folder))

    async def _after_pause(self, folder: Path) -> None:
        await asyncio.sleep(self.server.settings.debounce)
        self._timers.pop(folder, None)
        held = self._pending.pop(folder, set())
        stamped = []
        for path in held:
            try:
                stamped.append((path.stat().st_mtime_ns, str(path), path))
            except OSError:
                continue
        if not stamped:
            return
        newest = max(stamped)[2]
        uri = newest.as_uri()
        # A newer file makes the run's other checkpoints stale: their jobs are superseded and
        # their diagnostics go (partial ones too), so the folder shows what a fresh start would.
        for other in self.server.store.uris(SOURCE) | set(self._running):
            where = self.server.path_of(other)
            if other != uri and where is not None and where.parent == folder:
                self._supersede(other)
        rewritten = self._running.get(uri)
        if rewritten is not None:  # the same file saved again: its job reads the old contents
            self._abandon(rewritten)
        self._queued[folder] = uri
        self._next(folder)

    def _supersede(self, uri: str) -> None:
        job = self._running.get(uri)
        if job is not None:
            self._abandon(job)
        self.records.pop(uri, None)
        self.server.clear_findings(SOURCE, uri)

    def _abandon(self, job: Job) -> None:
        """Publish nothing of `job` and run none of its later phases; stop it now unless its
        request is in the worker, which finishes it (or is killed past the grace)."""
        if job.superseded or job.task is None:
            return
        job.superseded = True
        if self.worker.owner is not job:  # waiting for the worker: nothing to kill
            job.task.cancel()
            return
        grace = float(self.server.settings.extra.get("supersededGrace", DEFAULT_SUPERSEDED_GRACE_S))
        job.watchdog = asyncio.ensure_future(self._bound(job, grace))

    async def _bound(self, job: Job, grace: float) -> None:
        await asyncio.sleep(max(0.0, self.worker.sent_at + grace - time.monotonic()))
        if job.task is not None and not job.task.done() and self.worker.owner is job:
            log.info("a superseded probe ran past %g s: stopping the worker", grace)
            job.killed = True
            job.task.cancel()

    def _next(self, folder: Path) -> None:
        """Inspect the folder's queued newest checkpoint once no job of the folder runs."""
        if any(job.path.parent == folder for job in self._running.values()):
            return
        uri = self._queued.pop(folder, None)
        if uri is not None:
            self.start(uri)

    def forget(self, uri: str) -> None:
        job = self._running.get(uri)
        if job is not None:  # a run deleting old checkpoints: no need to kill the worker for it
            self._abandon(job)
        self.records.pop(uri, None)
        self.server.clear_findings(SOURCE, uri)
        path = self.server.path_of(uri)
        if path is not None:
            if self._queued.get(path.parent) == uri:
                del self._queued[path.parent]
            key = self._copy_key(path)
            script = self._script_of.get(key)
            if script is not None and not any(
                p.parent == path.parent for p in map(Path, self._record_paths())
            ):
                self.server.clear_findings(key, script)
                del self._script_of[key]
        self._refresh_lenses()

    def _record_paths(self) -> list[str]:
        return [str(r.checkpoint) for r in self.records.values()]

    # ---- jobs

    def start(self, uri: str) -> asyncio.Task[list[Finding]]:
        """Inspect `uri` now, cancelling a job already under way for it."""
        old = self._running.get(uri)
        if old is not None and old.task is not None:
            old.task.cancel()
        path = self.server.path_of(uri)
        assert path is not None
        job = Job(uri, path)
        job.task = asyncio.ensure_future(self._inspect(job))
        self._running[uri] = job
        return job.task

    async def answer(self, uri: str, cancelled: Callable[[], bool]) -> list[Finding] | str:
        """Findings of `uri` for a request (`nnprobe.inspect`): its inspection starts now. A
        newer inspection of the same file can supersede it (a watcher's event for the file the
        user just asked about, another request): the request then waits for that one and
        answers its findings, which describe the file as it is now. A string says why there are
        none (cancelled, or the folder's newer checkpoint replaced this one); never an
        exception, so the request is always answered."""
        self.start(uri)
        job = self._running[uri]
        while True:
            assert job.task is not None
            try:
                findings: list[Finding] | None = await job.task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # the handler itself is being stopped
                findings = None
            if findings is not None and not job.superseded:
                return findings
            newer = None if cancelled() else await self._successor(uri, job)
            if newer is None:
                if findings is not None:
                    return findings
                if job.superseded:
                    return f"superseded by a newer checkpoint in {job.path.parent.name or '.'}"
                return "the inspection was cancelled"
            job = newer

    async def _successor(self, uri: str, job: Job) -> Job | None:
        """A newer inspection of `uri` than `job`, under way or queued (waiting for the folder's
        running job, which ends within its time budget); None if there is none."""
        while True:
            newer = self._running.get(uri)
            if newer is not None and newer is not job and newer.task is not None:
                return newer
            if self._queued.get(job.path.parent) != uri:
                return None
            busy = [j.task for j in self._running.values() if j.path.parent == job.path.parent]
            if not busy or busy[0] is None:
                return None
            await asyncio.wait([busy[0]])

    async def _inspect(self, job: Job) -> list[Finding]:
        await self.server.ready.wait()
        progress = Progress(self.server, job.path.name, on_cancel=lambda: _cancel(job))
        try:
            findings = await self._run(job, progress)
        except asyncio.CancelledError:
            job.outcome = "superseded" if job.superseded and not job.killed else "cancelled"
            raise
        finally:
            progress.end()
            if job.watchdog is not None:
                job.watchdog.cancel()
            if self._running.get(job.uri) is job:
                del self._running[job.uri]
            self.history.append({"uri": job.uri, "outcome": job.outcome})
            self._next(job.path.parent)
        return findings

    async def _run(self, job: Job, progress: Progress) -> list[Finding]:
        server, settings = self.server, self.server.settings
        path = job.path
        config = server.configs.config_for(path)
        real = link_outside(path, [server.root or path.parent, config.root])
        if real is not None:  # the watcher found it; nobody asked for the file it leads to
            job.outcome = "failed"
            refused = [internal_finding("NP901", str(real), outside_message(real), config)]
            self._publish(job.uri, path, refused, None)
            return refused
        params = {
            "checkpoint": str(path.resolve()),
            "root": str(server.root or path.parent),
            "config_file": _str(server.configs.config_file(path)),
            "lint": dict(settings.lint),
            "trusted": settings.trusted,
        }
        timeout = float(settings.extra.get("probeTimeout", DEFAULT_TIMEOUT_S))
        megabytes = settings.extra.get("probeMemory")
        memory = int(megabytes * 2**20) if megabytes else default_memory_budget()
        progress.schedule(float(settings.extra.get("progressDelay", DEFAULT_PROGRESS_DELAY_MS)))
        job.outcome = "running"
        display = str(path.resolve())
        findings: list[Finding] = []
        # Weights and activations first (a fraction of a second), then the gradient probe's
        # optimizer steps (seconds on a CNN), so the first diagnostics do not wait for them.
        for phase, (percent, what) in enumerate(((40, "probing"), (70, "measuring gradients"))):
            try:
                if not self.worker.running:  # a worker that dies starting is NP904 too
                    progress.report(10, "starting the probe worker")
                    await self.worker.start(settings.interpreter)
                progress.report(percent, what)
                response = await self.worker.run(
                    "inspect",
                    {**params, "gradients": phase == 1},
                    python=settings.interpreter,
                    timeout=timeout,
                    memory_limit=memory,
                    owner=job,
                )
            except WorkerError as exc:
                if job.superseded:
                    job.outcome = "superseded"
                    return findings
                job.outcome = "failed"
                message = _budget_message(exc, timeout)
                findings = [*findings, internal_finding("NP904", display, message, config)]
                self._publish(job.uri, path, findings, None)
                return findings
            if "error" in response and not job.superseded:
                job.outcome = "failed"
                findings = [error_finding(response["error"], display, config)]
                self._publish(job.uri, path, findings, None)
                return findings
            result = response.get("result") or {}
            findings = [finding_from_dict(f) for f in result.get("findings", [])]
            if job.superseded:  # a newer checkpoint cleared this one's diagnostics: keep it so
                job.outcome = "superseded"
                return findings
            self._publish(job.uri, path, findings, result)
            if phase == 0 and result.get("needs_trust") and not self._told_trust:
                self._told_trust = True
                server.window_show_message(
                    types.ShowMessageParams(type=types.MessageType.Info, message=TRUST_MESSAGE)
                )
            if not result.get("gradients_skipped"):
                break
        job.outcome = "done"
        return findings

    def _publish(
        self, uri: str, path: Path, findings: list[Finding], result: dict[str, Any] | None
    ) -> None:
        display = str(path.resolve())
        own = [f for f in findings if f.path == display]
        copies = [f for f in findings if f.path != display]
        self.server.publish_findings(SOURCE, uri, own)
        key = self._copy_key(path)
        script_uri = Path(copies[0].path).resolve().as_uri() if copies else None
        old = self._script_of.pop(key, None)
        if old is not None and old != script_uri:
            self.server.clear_findings(key, old)
        if script_uri is not None:
            self._script_of[key] = script_uri
            self.server.publish_findings(key, script_uri, copies)
        elif old is not None and old == script_uri:
            self.server.clear_findings(key, old)
        if result is not None:
            self.records[uri] = ProbeRecord.from_result(path, result, len(own))
        self._refresh_lenses()

    @staticmethod
    def _copy_key(path: Path) -> str:
        return f"{SOURCE}:{path.resolve().parent.as_uri()}"

    def _refresh_lenses(self) -> None:
        capabilities = self.server.client_capabilities
        workspace = capabilities.workspace if capabilities else None
        lens = workspace.code_lens if workspace else None
        if lens is not None and lens.refresh_support:
            self.server.workspace_code_lens_refresh(None)

    def follow_edit(self, uri: str, line_map: Callable[[], LineMap]) -> None:
        """Move the layer lines of the probes shown on `uri` with an edit of it."""
        records = self.record_for(uri)
        if not records or line_map().identity:
            return
        moved = [record.shift_lines(line_map()) for record in records]
        if any(moved):
            self._refresh_lenses()

    # ---- what the editor asks

    def record_for(self, uri: str) -> list[ProbeRecord]:
        path = self.server.path_of(uri)
        return newest_for(self.records.values(), path) if path is not None else []

    def hover(self, uri: str, line: int) -> str | None:
        for record in self.record_for(uri):
            module = record.module_at(line + 1)
            if module is not None:
                return hover_markdown(record, module, self.server.root)
        return None

    def lenses(self, uri: str) -> list[types.CodeLens]:
        lenses: list[types.CodeLens] = []
        seen: set[tuple[str, int]] = set()
        for record in self.record_for(uri):
            model = record.model
            if not model:
                continue
            line = max(int(model.get("line", 1)) - 1, 0)
            if (model.get("name", ""), line) in seen:
                continue  # an older checkpoint of the same model
            seen.add((model.get("name", ""), line))
            where = types.Range(
                start=types.Position(line=line, character=0),
                end=types.Position(line=line, character=0),
            )
            checkpoint = record.checkpoint.as_uri()
            for title, command in (
                (lens_title(record), ""),
                ("Inspect", INSPECT),
                ("Embeddings", EMBEDDINGS),
            ):
                lenses.append(
                    types.CodeLens(
                        range=where,
                        command=types.Command(title=title, command=command, arguments=[checkpoint]),
                    )
                )
        return lenses

    def status(self) -> dict[str, Any]:
        return {
            "workerPid": self.worker.pid,
            "jobs": self.worker.jobs,
            "running": sorted(self._running),
            "pending": sorted(str(folder) for folder in self._pending),
            "queued": sorted(self._queued.values()),
            "history": list(self.history),
            "polling": self._poller is not None,
        }


class Progress:
    """window/workDoneProgress for one inspection, begun only once it has taken `delay` ms (a
    fast probe shows nothing) and only when the client supports server-created progress."""

    def __init__(
        self, server: NnprobeServer, name: str, on_cancel: Callable[[], None] | None = None
    ) -> None:
        self.server = server
        self.name = name
        self.on_cancel = on_cancel
        self.token = f"nnprobe-{uuid.uuid4().hex}"
        self.percentage = 0
        self.message = "queued"
        self._begun = False
        self._creating = False
        self._ended = False
        self._starter: asyncio.Task[None] | None = None

    def _supported(self) -> bool:
        capabilities = self.server.client_capabilities
        window = capabilities.window if capabilities else None
        return bool(window is not None and window.work_done_progress)

    def schedule(self, delay_ms: float) -> None:
        if self._supported():
            self._starter = asyncio.ensure_future(self._begin(delay_ms / 1000.0))

    async def _begin(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        # Past this point the request is on its way; cancelling it would leave pygls holding a
        # cancelled future when the client's answer comes.
        self._creating = True
        try:
            await self.server.work_done_progress.create_async(self.token)
        except Exception as exc:
            log.debug("window/workDoneProgress/create failed: %s", exc)
            return
        if self._ended:
            return
        self._begun = True
        cancelled = self.server.work_done_progress.tokens.get(self.token)
        if cancelled is not None and self.on_cancel is not None:
            on_cancel = self.on_cancel
            cancelled.add_done_callback(lambda future: future.cancelled() and on_cancel())
        self.server.work_done_progress.begin(
            self.token,
            types.WorkDoneProgressBegin(
                title=f"nnprobe: inspecting {self.name}",
                message=self.message,
                percentage=self.percentage,
                cancellable=self.on_cancel is not None,
            ),
        )

    def report(self, percentage: int, message: str) -> None:
        self.percentage, self.message = percentage, message
        if self._begun and not self._ended:
            self.server.work_done_progress.report(
                self.token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._starter is not None and not self._creating:
            self._starter.cancel()
        if self._begun:
            self.server.work_done_progress.end(
                self.token, types.WorkDoneProgressEnd(message="done")
            )
        self.server.work_done_progress.tokens.pop(self.token, None)


def _cancel(job: Job) -> None:
    if job.task is not None:
        job.task.cancel()


def _budget_message(exc: WorkerError, timeout: float) -> str:
    if exc.memory:
        return f"{exc.message}; the setting nnprobe.probeMemory raises the budget"
    if exc.timeout:
        return (
            f"the inspection took longer than its {timeout:g} s budget and was stopped "
            "(the setting nnprobe.probeTimeout raises it)"
        )
    return f"the probe worker stopped: {exc.message}; it restarts for the next job"


def on_request_cancel(server: NnprobeServer, callback: Callable[[], object]) -> None:
    """Call `callback` when the client cancels the request being handled ($/cancelRequest).

    pygls cancels the request's result future but not the command handler behind it (commands
    run through a built-in generator handler), so the two are linked here, through pygls's
    record of the current request (private: absent in another pygls, cancelling does nothing).
    """
    protocol = server.protocol
    current = getattr(protocol, "_ctx_msg_id", None)
    futures = getattr(protocol, "_request_futures", None)
    msg_id = current.get() if current is not None else None
    future = futures.get(msg_id) if futures is not None and msg_id is not None else None
    if future is not None:
        future.add_done_callback(lambda done: done.cancelled() and callback())


def _str(path: Path | None) -> str | None:
    return str(path) if path is not None else None


def register(server: NnprobeServer) -> None:
    probes = RuntimeProbes(server)
    server.settings_listeners.append(probes.on_settings)
    server.watched_file_listeners.append(probes.on_files)
    server.line_followers.append(probes.follow_edit)

    async def inspect_command(ls: NnprobeServer, args: tuple[Any, ...]) -> dict[str, Any]:
        """`nnprobe.inspect` on a checkpoint: run the inspection now, answer its findings."""
        uri = uri_argument(INSPECT, args)
        path = ls.path_of(uri)
        if path is None or not path.is_file():
            return payloads.unavailable(f"{uri} is not a checkpoint file on disk")
        stopped = False

        def stop() -> None:
            nonlocal stopped
            stopped = True
            job = probes._running.get(uri)
            if job is not None:
                _cancel(job)

        on_request_cancel(ls, stop)
        findings = await probes.answer(uri, lambda: stopped)
        if isinstance(findings, str):
            return payloads.unavailable(f"{ls.display_path(uri)}: {findings}")
        return payloads.findings(uri, Report(findings=findings, files=1))

    server.runtime_commands[INSPECT] = inspect_command

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: NnprobeServer, params: types.HoverParams) -> types.Hover | None:
        text = probes.hover(params.text_document.uri, params.position.line)
        if text is None:
            return None
        return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text))

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    def code_lens(ls: NnprobeServer, params: types.CodeLensParams) -> list[types.CodeLens]:
        return probes.lenses(params.text_document.uri)

    @server.command(STATUS)
    def status(ls: NnprobeServer, *args: Any) -> dict[str, Any]:
        return probes.status()
