"""`python -m nnprobe.worker`: runs probe jobs for a front door, one at a time, over JSON lines.

Probes run the user's model code and may hang, loop or exhaust memory; in a separate process they
can be stopped by killing it, which no in-process timer can do to a forward stuck in C++. The CLI
and the language server start this module with the user's interpreter (the one that has torch and
their code), send one job, wait with a time budget, and kill and restart it when the budget runs
out (NP904). The protocol is in docs/worker.md.

The protocol owns the real stdout: it is moved to a private file descriptor at start, and fd 1 and
sys.stdout are pointed at stderr, so whatever user code or native libraries print cannot corrupt
the stream.

The worker ends with the process that started it (core/lifetime.py): a front door killed mid-job
cannot leave it running. Before anything imports them, the libraries that would write outside
nnprobe's cache are told not to (`library_environment`): ONNX Runtime's telemetry, on by default
in its Linux wheels since 1.29, would send events to Microsoft and keep a device id and an event
database under ~/.cache/Microsoft/DeveloperTools (from C++: an audit hook never saw it; the CLI,
whose picture commands run ONNX Runtime in its own process, turns it off too); matplotlib keeps
its font cache under ~/.cache/matplotlib unless MPLCONFIGDIR names another folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from typing import Any, TextIO

from nnprobe.core.lifetime import die_with_parent
from nnprobe.probe.memory import address_space_limit

PROTOCOL_VERSION = 1
# method -> "module:function" taking the params and returning the result (or {"error": ...}):
# `probe` is one probe job (the CLI), `inspect` a whole checkpoint inspection (the editor),
# `checkpoint` the CLI's inspection of a file only this process may load (TorchScript).
JOBS = {
    "probe": "nnprobe.probe.jobs:run_job",
    "inspect": "nnprobe.probe.editor_job:run_inspection",
    "picture": "nnprobe.visuals.jobs:run_picture",
    "warm": "nnprobe.visuals.embedding:warm_job",
    "checkpoint": "nnprobe.inspectors.checkpoint:checkpoint_job",
}


def _protocol_stream() -> TextIO:
    fd = os.dup(sys.stdout.fileno())
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", encoding="utf-8", buffering=1)


def _send(stream: TextIO, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, default=str) + "\n")
    stream.flush()


def handle(request: dict[str, Any]) -> dict[str, Any] | None:
    """The response to one request (None for `shutdown`)."""
    rid = request.get("id")
    method = request.get("method")
    if method == "ping":
        return {"id": rid, "result": {"pid": os.getpid()}}
    if method == "shutdown":
        return None
    if method not in JOBS:
        return {"id": rid, "error": {"code": "protocol", "message": f"unknown method {method!r}"}}
    import importlib

    from nnprobe.core import trust

    module, function = JOBS[method].split(":")
    params = request.get("params") or {}
    try:
        # Whatever else the params say, an untrusted job imports and unpickles nothing.
        with trust.guard(trust.job_trusted(params)):
            outcome = getattr(importlib.import_module(module), function)(params)
    except Exception as exc:
        message = f"the probe crashed ({type(exc).__name__}: {exc}); please report it"
        trace = "".join(traceback.format_exception(exc))
        return {"id": rid, "error": {"code": "NP907", "message": message, "traceback": trace}}
    if "error" in outcome:
        return {"id": rid, "error": outcome["error"]}
    return {"id": rid, "result": outcome}


def _checkpoint(request: dict[str, Any]) -> object:
    params = request.get("params")
    return params.get("checkpoint") if isinstance(params, dict) else None


def _warm_up() -> None:
    """Import what every job needs before saying ready, so a job's time budget measures the job."""
    import importlib

    for name in ("numpy", "torch", "onnx", "onnxruntime", "nnprobe.probe.pipeline"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import nnprobe.inspectors  # noqa: F401  (registers the rules)


def library_environment() -> None:
    """Keep ONNX Runtime and matplotlib from writing outside nnprobe's cache. Both read these
    once, when they load: call this before anything imports them."""
    from nnprobe.probe.export import default_cache_dir

    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    os.environ.setdefault("MPLCONFIGDIR", str(default_cache_dir() / "matplotlib"))


def main() -> int:
    die_with_parent()
    library_environment()
    stream = _protocol_stream()
    # A probe started by a job runs here: this is the process the front door kills.
    os.environ["NNPROBE_WORKER"] = "inprocess"
    with contextlib.suppress(ImportError):  # the one process that may run TorchScript's code
        from nnprobe.probe.loading import allow_programs_here

        allow_programs_here()
    _warm_up()
    _send(stream, {"event": "ready", "pid": os.getpid(), "protocol": PROTOCOL_VERSION})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("a request must be a JSON object")
        except ValueError as exc:
            _send(stream, {"id": None, "error": {"code": "protocol", "message": str(exc)}})
            continue
        # The job's memory budget also caps its address space: one huge allocation fails in
        # the job (NP904) instead of waking the kernel's OOM killer.
        with address_space_limit(request.get("memory_limit"), _checkpoint(request)):
            response = handle(request)
        if response is None:
            _send(stream, {"id": request.get("id"), "result": {"shutdown": True}})
            break
        _send(stream, response)
    return 0


if __name__ == "__main__":
    sys.exit(main())
