"""Every hostile input of every corpus module through `nnprobe inspect` run untrusted: nothing
runs, nothing hangs, the report is JSON with a sane exit code, and the case's finding is there.

The inputs are tests/security/cases.py's: corpus.CORPUS and the CASES of each corpus_*.py module
(a new module joins by itself). Each run gets a fresh folder that is both the workspace and the
working directory, as a CI checkout of a fork's pull request is. Every case is walked as a folder
with `--untrusted` (the README's CI recipe); the first case of each module is also run on its
path with `--untrusted` and `--no-import` and as a folder with `NNPROBE_UNTRUSTED=1`. A
`trusted-*` case is about what a trusted run may evaluate, so it is walked in the default
(trusted) mode instead. The runs are started two at a time when the module's first test asks
for its result (only those of the selected tests), so the whole set costs minutes, not the sum
of every CLI start.

bench/security_bench.py runs the same inputs through every mode, the worker and the language
server, with peak memory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("safetensors")

from cases import Entry, hostile  # noqa: E402

NNPROBE = str(Path(sys.executable).with_name("nnprobe"))
TIMEOUT_S = 90  # per run; nnprobe's own probe budget below is a third of it
SUBSET = 1  # cases per module also run in the other modes
MODES = {  # name -> (flags, environment, target)
    "untrusted-folder": (("--untrusted",), {}, "folder"),
    "untrusted-path": (("--untrusted",), {}, "path"),
    "no-import-path": (("--no-import",), {}, "path"),
    "env-folder": ((), {"NNPROBE_UNTRUSTED": "1"}, "folder"),
    "trusted-folder": ((), {}, "folder"),
}


@dataclass(frozen=True)
class Run:
    entry: Entry
    mode: str

    @property
    def id(self) -> str:
        return f"{self.entry.name}-{self.mode}"


def runs() -> list[Run]:
    entries, _ = hostile(strict=True)
    out, seen = [], {}
    for entry in entries:
        if entry.trusted_only:
            out.append(Run(entry, "trusted-folder"))
            continue
        out.append(Run(entry, "untrusted-folder"))
        seen[entry.source] = seen.get(entry.source, 0) + 1
        if seen[entry.source] <= SUBSET:
            out += [Run(entry, m) for m in ("untrusted-path", "no-import-path", "env-folder")]
    return out


RUNS = runs()


@dataclass
class Outcome:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    executed: bool


def execute(run: Run, folder: Path) -> Outcome:
    workspace = folder / "ws"
    workspace.mkdir(parents=True)
    sentinel = folder / "SENTINEL_code_ran"
    target = Path(run.entry.case.build(workspace, sentinel))
    flags, extra, where = MODES[run.mode]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NNPROBE_", "PYTHONPATH"))}
    env.update(extra, NNPROBE_CACHE_DIR=str(folder / "cache"))
    env.update(getattr(run.entry.case, "env", None) or {})
    path = "." if where == "folder" else os.path.relpath(target, workspace)
    command = [NNPROBE, "inspect", "--output-format", "json", "--probe-timeout", "30", *flags, path]
    process = subprocess.Popen(
        command,
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    # The run's process group: the CLI, and the worker it started if that outlived it.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    if timed_out:
        stdout, stderr = process.communicate()
    return Outcome(process.returncode, stdout, stderr, timed_out, os.path.lexists(sentinel))


@pytest.fixture(scope="module")
def outcomes(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Outcome]]]:
    """The selected tests' runs, started two at a time at the first test that asks."""
    selected = [
        item.callspec.params["run"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    ]
    pool = ThreadPoolExecutor(2)
    futures = {
        run.id: pool.submit(execute, run, tmp_path_factory.mktemp("corpus")) for run in selected
    }
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


def findings_of(document: Any) -> list[dict[str, Any]]:
    assert isinstance(document, dict) and isinstance(document.get("findings"), list), document
    return list(document["findings"])


@pytest.mark.parametrize("run", RUNS, ids=[r.id for r in RUNS])
def test_untrusted_cli_refuses(run: Run, outcomes: dict[str, Future[Outcome]]) -> None:
    outcome = outcomes[run.id].result()
    assert not outcome.executed, f"{run.entry.name}: the payload ran ({run.mode})"
    assert not outcome.timed_out, f"no answer in {TIMEOUT_S} s: {outcome.stderr[-2000:]}"
    assert outcome.returncode in (0, 1), outcome.stderr[-2000:]
    assert "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    try:
        document = json.loads(outcome.stdout)
        findings = findings_of(document)
    except ValueError:
        pytest.fail(f"stdout is not one JSON document: {outcome.stdout[:500]!r}")
    case = run.entry.case
    skipped = MODES[run.mode][2] == "folder" and not findings and document["summary"]["files"] == 0
    if case.code and not skipped:  # a walk leaves out what is not weights (empty-zip): by design
        said = [f["message"] for f in findings if f["code"] == case.code]
        assert said, f"no {case.code} among {[(f['code'], f['message']) for f in findings]}"
        assert any(case.says in m for m in said), (case.says, said)
