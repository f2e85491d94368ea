"""Fault injection on the probe worker: user model code that gets killed mid-job, hangs, runs out
of memory, raises or returns NaN must cost the user one finding, never the worker's front door.

Two levels, both with real processes and real jobs:
- the worker client the CLI and the server share (`WorkerClient`): each fault is injected into a
  real `python -m nnprobe.worker`, then a job on a good model must succeed (worker_faults.py, which
  bench/fault_bench.py loops for the figures);
- the language server over stdio (pytest-lsp): a trusted workspace whose training script's model
  is faulty; the server publishes the finding on the checkpoint (NP305 on the script's layer line),
  keeps answering hovers and edits meanwhile, and probes the checkpoint once the script is fixed.

A killed or timed-out worker must be replaced; one that raised, returned NaN or had an allocation
refused by its address-space cap is healthy and must be kept (a restart costs seconds of imports).
"""

from __future__ import annotations

import importlib.util
import mmap
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")
resource = pytest.importorskip("resource")
if not Path("/proc/self/limits").is_file():
    pytest.skip("the address-space cap and its checks need Linux /proc", allow_module_level=True)

LSP = Path(__file__).resolve().parents[1] / "lsp"
sys.path.insert(0, str(LSP))

from lsp_helpers import Document  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from runtime_workspace import changed, codes, status, until  # noqa: E402
from worker_faults import (  # noqa: E402
    DEAD,
    FAULTS,
    FC1,
    FC2,
    STARTED,
    Fault,
    build_workspace,
    inject,
    save_weights,
    training_script,
)

from nnprobe.probe.memory import ADDRESS_SPACE_SLACK, address_space_limit  # noqa: E402
from nnprobe.probe.worker_client import WorkerClient  # noqa: E402

# The language-server fixtures of tests/lsp (one real server for this module).
_spec = importlib.util.spec_from_file_location("lsp_fixtures", LSP / "conftest.py")
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_fixtures)
client = _fixtures.client
workspace = _fixtures.workspace

# The budget leaves the good jobs room and refuses the Hog's 16 GiB at once; no gradient probe
# (its optimizer steps add time and no fault).
INIT_OPTIONS = {
    "debounce": 50,
    "progressDelay": 0,
    "trusted": True,
    "probeMemory": 1024,
    "ignore": ["NP4"],
}
FILES: dict[str, str] = {}
__all__ = ["FILES", "INIT_OPTIONS", "client", "workspace"]

# ---- the worker client


@pytest.fixture(scope="module")
def fault_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = build_workspace(tmp_path_factory.mktemp("faults"))
    previous = os.environ.get("NNPROBE_CACHE_DIR")
    os.environ["NNPROBE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield root
    finally:
        if previous is None:
            os.environ.pop("NNPROBE_CACHE_DIR", None)
        else:
            os.environ["NNPROBE_CACHE_DIR"] = previous


@pytest.fixture(scope="module")
def worker(fault_root: Path) -> Iterator[WorkerClient]:
    client = WorkerClient()
    yield client
    client.close()


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_worker_fault_is_reported_and_the_next_job_succeeds(
    fault: Fault, worker: WorkerClient, fault_root: Path
) -> None:
    outcome = inject(worker, fault_root, fault)
    assert outcome.code == fault.code, outcome
    assert fault.says in outcome.message, outcome.message
    assert outcome.restarted == fault.restarts, outcome
    assert outcome.next_ok, outcome.next_codes
    assert outcome.survived
    # The job's address-space cap is lifted once the job is over.
    assert outcome.seen["address_space_cap_after"] == "unlimited"
    if fault.name == "killed":
        assert outcome.seen["address_space_cap"] != "unlimited"  # it was set during the job
    if fault.name == "timeout":
        assert outcome.seconds < fault.timeout + 5, outcome.seconds
    if fault.name == "out-of-memory":  # not remembered as the architecture's export failure
        assert not list(Path(os.environ["NNPROBE_CACHE_DIR"]).glob("graphs/*.failed*"))
    if fault.name == "returns-nan":
        assert not {c for c in outcome.codes if c.startswith("NP9")}, outcome.codes
    print(
        f"\nworker fault {fault.name}: {outcome.code} ({outcome.message[:60]}...), "
        f"worker restarted: {outcome.restarted}, next job ok: {outcome.next_ok}"
    )


def test_the_cap_refuses_a_huge_allocation_but_leaves_room_to_map_the_checkpoint(
    tmp_path: Path,
) -> None:
    """Glue for the worker's per-job cap: memory past the budget is refused, a checkpoint as big
    as that can still be memory-mapped, and the previous limit comes back afterwards."""
    checkpoint = tmp_path / "big.pt"
    with open(checkpoint, "wb") as handle:
        handle.truncate(2 * ADDRESS_SPACE_SLACK)  # sparse: no disk used
    before = resource.getrlimit(resource.RLIMIT_AS)
    with address_space_limit(2**20) as cap:
        assert cap is not None and resource.getrlimit(resource.RLIMIT_AS)[0] == cap
        with pytest.raises(MemoryError):
            bytearray(2 * ADDRESS_SPACE_SLACK)
        with open(checkpoint, "rb") as handle, pytest.raises(OSError):
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    with address_space_limit(2**20, str(checkpoint)), open(checkpoint, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        assert len(mapped) == 2 * ADDRESS_SPACE_SLACK
        mapped.close()
    assert resource.getrlimit(resource.RLIMIT_AS) == before
    with address_space_limit(None) as none:
        assert none is None


# ---- the language server


@dataclass(frozen=True)
class ServerFault:
    name: str
    model: str
    code: str
    says: str
    restarts: bool
    settings: dict[str, Any] = field(default_factory=dict)
    on_script: str | None = None  # the script line the finding is copied onto


SERVER_FAULTS = [
    ServerFault(
        "timeout", "Stuck", "NP904", "longer than its 2 s budget", True, {"probeTimeout": 2}
    ),
    ServerFault("out-of-memory", "Hog", "NP904", "ran out of memory: an allocation of 16.0", False),
    ServerFault("forward-raises", "Raises", "NP903", "fault injected: the forward raised", False),
    ServerFault(
        "returns-nan", "ReturnsNaN", "NP305", "NaN/Inf first appears", False, on_script=FC2
    ),
]


def _line(text: str, line: str) -> int:
    return text.splitlines().index(line)


async def _reconfigure(client: LanguageClient, settings: dict[str, Any]) -> None:
    """New settings, applied before this returns: the server pulls them with
    workspace/configuration and applies them before it reads the next message."""
    asked = []
    answer = client.get_configuration

    def counting(*args: Any, **kwargs: Any) -> Any:
        asked.append(args)
        return answer(*args, **kwargs)

    client.get_configuration = counting  # type: ignore[method-assign]
    try:
        client.set_configuration({**INIT_OPTIONS, **settings}, section="nnprobe")
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await until(lambda: bool(asked), "the server to pull the new settings")
        await status(client)  # a round trip after the answer
    finally:
        client.get_configuration = answer  # type: ignore[method-assign]


async def _answers(client: LanguageClient, script: Path) -> None:
    """The server is up: hover answers and an edit gets fresh static diagnostics."""
    await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=script.as_uri()),
            position=types.Position(line=0, character=0),
        )
    )
    document = Document(client, script, script.read_text(encoding="utf-8"))
    document.open()
    await document.diagnostics()
    document.change(document.text + "\n# edited while the probe failed\n")
    await document.diagnostics()
    document.close()


@pytest.mark.asyncio(loop_scope="module")
async def test_server_probes_a_good_model(client: LanguageClient, workspace: Path) -> None:
    """The baseline the faults are measured against, and a running worker to compare with."""
    script = workspace / "good" / "train.py"
    script.parent.mkdir()
    script.write_text(training_script("Good", "good/net.pt"), encoding="utf-8")
    checkpoint = save_weights(workspace / "good" / "net.pt", dead=DEAD)
    changed(client, checkpoint)
    recorder = client.recorder  # type: ignore[attr-defined]
    await recorder.wait(checkpoint.as_uri(), lambda p: "NP301" in codes(p))
    assert (await status(client))["workerPid"] is not None


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("fault", SERVER_FAULTS, ids=[f.name for f in SERVER_FAULTS])
async def test_server_reports_a_faulty_model_stays_up_and_probes_the_fix(
    fault: ServerFault, client: LanguageClient, workspace: Path
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    folder = workspace / fault.name
    folder.mkdir()
    script, checkpoint = folder / "train.py", folder / "net.pt"
    faulty = training_script(fault.model, f"{fault.name}/net.pt")
    script.write_text(faulty, encoding="utf-8")
    save_weights(checkpoint, dead=DEAD)
    before = (await status(client))["workerPid"]
    if fault.settings:
        await _reconfigure(client, fault.settings)
    changed(client, checkpoint)
    if fault.model == "Stuck":  # the server answers while the worker is stuck in the forward
        await until((folder / STARTED).exists, "the stuck forward to start")
        await _answers(client, workspace / "good" / "train.py")

    published = await recorder.wait(checkpoint.as_uri(), lambda p: fault.code in codes(p))
    [found] = [d for d in published.diagnostics if d.code == fault.code]
    assert fault.says in found.message, found.message
    assert found.range.start.line == 0
    if fault.on_script is not None:
        copied = await recorder.wait(script.as_uri(), lambda p: fault.code in codes(p))
        lines = [d.range.start.line for d in copied.diagnostics if d.code == fault.code]
        assert lines == [_line(faulty, fault.on_script)]
    await _answers(client, script)

    # The user fixes the forward and the training run saves again.
    if fault.settings:
        await _reconfigure(client, {})
    fixed = training_script("Good", f"{fault.name}/net.pt")
    script.write_text(fixed, encoding="utf-8")
    save_weights(checkpoint, dead=DEAD)
    changed(client, checkpoint)
    probed = await recorder.wait(
        checkpoint.as_uri(),
        lambda p: "NP301" in codes(p) and not {c for c in codes(p) if c.startswith("NP9")},
    )
    assert fault.code not in codes(probed)
    on_script = await recorder.wait(script.as_uri(), lambda p: "NP301" in codes(p))
    dead = [d.range.start.line for d in on_script.diagnostics if d.code == "NP301"]
    assert dead == [_line(fixed, FC1)]
    after = (await status(client))["workerPid"]
    assert after is not None and (after != before) == fault.restarts, (before, after)
    print(
        f"\nserver fault {fault.name}: {fault.code} published, server answered, "
        f"worker restarted: {after != before}, fixed model probed (NP301 on line {dead[0] + 1})"
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_server_reports_a_worker_that_dies_starting(
    client: LanguageClient, workspace: Path
) -> None:
    """An interpreter that crashes before the worker is ready: NP904 with its last words, then
    the right interpreter again and the next probe succeeds."""
    recorder = client.recorder  # type: ignore[attr-defined]
    crashing = workspace / "crashing-python"
    crashing.write_text("#!/bin/sh\necho 'fault injected: died starting' >&2\nexit 3\n")
    crashing.chmod(0o755)
    checkpoint = workspace / "good" / "net.pt"
    await _reconfigure(client, {"interpreter": str(crashing)})
    changed(client, checkpoint)
    published = await recorder.wait(checkpoint.as_uri(), lambda p: "NP904" in codes(p))
    [found] = [d for d in published.diagnostics if d.code == "NP904"]
    assert "exited with status 3 while starting: fault injected: died starting" in found.message
    await _answers(client, workspace / "good" / "train.py")
    await _reconfigure(client, {})
    changed(client, checkpoint)
    await recorder.wait(checkpoint.as_uri(), lambda p: "NP301" in codes(p))
    print("\nserver fault dies-starting: NP904 published, server answered, next probe ok")
