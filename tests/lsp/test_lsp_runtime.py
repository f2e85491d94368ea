"""Checkpoints written into the workspace while the server runs: inspected in the probe worker,
runtime diagnostics on the checkpoint and on the training script's layer line, beside the static
ones; hover and code lens from the last probe; progress; trust off then on; a burst probed once;
a killed worker reported (NP904) and replaced; a cancelled inspection stops its job; checkpoints
saved while an inspection runs do not kill the worker, and only the newest of them is inspected.

The tests share one server and run in order (the workspace grows as a training run's would)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from lsp_helpers import TIMEOUT_S, Document  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402
from runtime_workspace import (  # noqa: E402
    CLASS_LINE,
    FC1_LINE,
    GATED,
    TRAIN,
    changed,
    codes,
    idle,
    save_checkpoint,
    save_gated,
    save_hanging,
    state_until,
    status,
    until,
)
from runtime_workspace import FILES as RUNTIME_FILES  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")

INIT_OPTIONS = {"debounce": 50, "progressDelay": 0, "trusted": False, "probeTimeout": 60}
FILES = {**RUNTIME_FILES, "gated/train_gated.py": GATED}
__all__ = ["FILES", "INIT_OPTIONS"]


def runtime(params: types.PublishDiagnosticsParams) -> set[str]:
    return {str(d.code) for d in params.diagnostics if not str(d.code).startswith("NP1")}


async def reconfigure(client: LanguageClient, settings: dict[str, object]) -> None:
    client.set_configuration({**INIT_OPTIONS, **settings}, section="nnprobe")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))


async def test_untrusted_workspace_reads_weights_and_imports_nothing(
    client: LanguageClient, workspace: Path
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    checkpoint = save_checkpoint(workspace / "runs" / "ckpt_0.pt")
    message = recorder.next_message()
    changed(client, checkpoint)
    published = await recorder.wait(checkpoint.as_uri(), lambda p: "NP905" in codes(p))
    found = {str(d.code): d.message for d in published.diagnostics}
    assert "not allowed" in found["NP905"]
    assert not {c for c in found if c.startswith(("NP3", "NP4"))}  # nothing ran the model
    assert "trusted workspace" in (await message).message


async def test_trusting_the_workspace_probes_the_checkpoint(
    client: LanguageClient, workspace: Path
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    checkpoint = workspace / "runs" / "ckpt_0.pt"
    script = workspace / "train.py"
    await reconfigure(client, {"trusted": True})
    on_checkpoint = await recorder.wait(checkpoint.as_uri(), lambda p: "NP301" in codes(p))
    assert "NP905" not in codes(on_checkpoint)
    on_script = await recorder.wait(script.as_uri(), lambda p: "NP301" in codes(p))
    dead = [d for d in on_script.diagnostics if d.code == "NP301"]
    assert [d.range.start.line for d in dead] == [FC1_LINE]
    assert "ckpt_0.pt" in dead[0].message and "32 of 64" in dead[0].message


async def test_static_and_runtime_diagnostics_keep_each_other(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "train.py", TRAIN)
    document.open()
    both = await document.diagnostics(lambda p: "NP120" in codes(p) and "NP301" in codes(p))
    assert {"NP120", "NP301"} <= {str(d.code) for d in both}
    document.change(TRAIN + "\n")  # a keystroke re-lints: the runtime copies stay
    again = await document.diagnostics(lambda p: "NP120" in codes(p))
    assert "NP301" in {str(d.code) for d in again}


async def test_hover_shows_the_layers_last_probe(client: LanguageClient, workspace: Path) -> None:
    await idle(client)  # the gradient probe publishes after the first diagnostics
    uri = (workspace / "train.py").as_uri()
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=FC1_LINE, character=12),
        )
    )
    assert hover is not None
    assert isinstance(hover.contents, types.MarkupContent)
    assert hover.contents.kind == types.MarkupKind.Markdown
    text = hover.contents.value
    assert "`fc1`" in text and "| dead units | 50% |" in text
    assert "activation std" in text and "gradient norm" in text and "He 2/fan_in" in text
    assert "runs/ckpt_0.pt" in text and "probed just now" in text
    nothing = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=0, character=0),
        )
    )
    assert nothing is None


async def test_code_lens_above_the_probed_class(client: LanguageClient, workspace: Path) -> None:
    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(
            text_document=types.TextDocumentIdentifier(uri=(workspace / "train.py").as_uri())
        )
    )
    assert lenses and {lens.range.start.line for lens in lenses} == {CLASS_LINE}
    titles = [lens.command.title for lens in lenses if lens.command]
    assert re.fullmatch(r"\d+ issues · 50% dead in fc1 · probed just now", titles[0]), titles
    commands = {lens.command.title: lens.command for lens in lenses if lens.command}
    checkpoint = (workspace / "runs" / "ckpt_0.pt").as_uri()
    assert commands["Inspect"].command == "nnprobe.inspect"
    assert commands["Embeddings"].command == "nnprobe.embeddingPreview"
    assert list(commands["Inspect"].arguments or []) == [checkpoint]


def dead_lines(diagnostics: list[types.Diagnostic]) -> list[int]:
    return [d.range.start.line for d in diagnostics if d.code == "NP301"]


async def hover_text(client: LanguageClient, uri: str, line: int) -> str:
    hover = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=12),
        )
    )
    return "" if hover is None else str(getattr(hover.contents, "value", hover.contents))


async def lens_lines(client: LanguageClient, uri: str) -> set[int]:
    lenses = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return {lens.range.start.line for lens in lenses or []}


async def test_runtime_positions_follow_lines_inserted_and_deleted_above_the_model(
    client: LanguageClient, workspace: Path
) -> None:
    document = Document(client, workspace / "train.py", TRAIN + "\n")
    document.version = 2  # opened and changed once by the test above
    lines = document.text.splitlines(keepends=True)
    above = ["# one\n", "# two\n", "# three\n"]
    document.change("".join([*lines[:CLASS_LINE], *above, *lines[CLASS_LINE:]]))
    moved = await document.diagnostics(lambda p: "NP120" in codes(p))
    assert dead_lines(moved) == [FC1_LINE + 3]
    assert "`fc1`" in await hover_text(client, document.uri, FC1_LINE + 3)
    assert "`fc1`" not in await hover_text(client, document.uri, FC1_LINE)
    assert await lens_lines(client, document.uri) == {CLASS_LINE + 3}

    document.change(TRAIN + "\n")
    back = await document.diagnostics(lambda p: "NP120" in codes(p))
    assert dead_lines(back) == [FC1_LINE]
    assert "| dead units | 50% |" in await hover_text(client, document.uri, FC1_LINE)
    assert "`fc1`" not in await hover_text(client, document.uri, FC1_LINE + 3)
    assert await lens_lines(client, document.uri) == {CLASS_LINE}


async def test_progress_begins_reports_and_ends(client: LanguageClient) -> None:
    titles = {}
    for reports in client.progress_reports.values():
        begin = next((r for r in reports if isinstance(r, types.WorkDoneProgressBegin)), None)
        if begin is not None:
            titles[begin.title] = reports
    reports = titles["nnprobe: inspecting ckpt_0.pt"]
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    percentages = [r.percentage for r in reports if getattr(r, "percentage", None) is not None]
    assert percentages == sorted(percentages) and percentages[-1] >= 40


async def test_a_burst_of_checkpoints_probes_only_the_newest(
    client: LanguageClient, workspace: Path
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    before = await status(client)
    runs = workspace / "runs"
    paths = [save_checkpoint(runs / f"ckpt_{i}.pt", dead=24 + i * 4) for i in (1, 2, 3)]
    for path in paths:  # one event per save, as a watcher sends them
        changed(client, path)
    newest = await recorder.wait(paths[-1].as_uri(), lambda p: "NP301" in codes(p))
    assert "36 of 64" in next(d.message for d in newest.diagnostics if d.code == "NP301")
    await idle(client)
    after = await status(client)
    assert [h["uri"] for h in after["history"][len(before["history"]) :]] == [paths[-1].as_uri()]
    assert all(p.as_uri() not in recorder.history for p in paths[:-1])
    # An older checkpoint of the run loses its diagnostics, as a fresh server would show it.
    assert not recorder.latest((runs / "ckpt_0.pt").as_uri()).diagnostics
    # The script shows the newest checkpoint of the run, not one copy per checkpoint.
    script = recorder.latest((workspace / "train.py").as_uri())
    dead = [d for d in script.diagnostics if d.code == "NP301"]
    assert len(dead) == 1 and dead[0].message.startswith("ckpt_3.pt")


async def test_inspect_command_runs_the_inspection(client: LanguageClient, workspace: Path) -> None:
    checkpoint = (workspace / "runs" / "ckpt_0.pt").as_uri()
    payload = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="nnprobe.inspect", arguments=[checkpoint])
    )
    assert payload["kind"] == "findings"
    found = {(f["code"], Path(f["path"]).name) for f in payload["findings"]}
    assert {("NP301", "ckpt_0.pt"), ("NP301", "train.py")} <= found


async def test_a_killed_worker_is_reported_and_replaced(
    client: LanguageClient, workspace: Path
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    started = workspace / "hangs" / "forward-started"
    hanging = save_hanging(workspace / "hangs" / "hangs.pt")
    changed(client, hanging)
    await until(started.exists, "the hanging forward to start")
    pid = (await status(client))["workerPid"]
    os.kill(pid, signal.SIGKILL)
    crashed = await recorder.wait(hanging.as_uri(), lambda p: "NP904" in codes(p))
    assert "worker stopped" in crashed.diagnostics[0].message

    checkpoint = save_checkpoint(workspace / "runs" / "ckpt_4.pt", dead=40)
    changed(client, checkpoint)
    probed = await recorder.wait(checkpoint.as_uri(), lambda p: "NP301" in codes(p))
    assert "40 of 64" in next(d.message for d in probed.diagnostics if d.code == "NP301")
    assert (await status(client))["workerPid"] not in (None, pid)


async def test_cancelling_an_inspection_stops_its_job(
    client: LanguageClient, workspace: Path
) -> None:
    started = workspace / "hangs" / "forward-started"
    started.unlink(missing_ok=True)
    hanging = (workspace / "hangs" / "hangs.pt").as_uri()
    pid = (await status(client))["workerPid"]
    request = client.protocol.send_request(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command="nnprobe.inspect", arguments=[hanging]),
        msg_id="cancel-me",
    )
    await until(started.exists, "the hanging forward to start")
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
    with pytest.raises(Exception, match="cancel"):
        await asyncio.wait_for(asyncio.wrap_future(request), TIMEOUT_S)
    await until(lambda: _gone(pid), "the worker to be killed", timeout=TIMEOUT_S)
    history = (await status(client))["history"]
    assert history[-1] == {"uri": hanging, "outcome": "cancelled"}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A killed child stays a zombie until the server reaps it: that counts as gone.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


async def test_a_deleted_checkpoint_loses_its_diagnostics(
    client: LanguageClient, workspace: Path
) -> None:
    recorder = client.recorder  # type: ignore[attr-defined]
    checkpoint = workspace / "runs" / "ckpt_4.pt"  # the run's newest: older ones show nothing
    assert recorder.latest(checkpoint.as_uri()).diagnostics
    checkpoint.unlink()
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=checkpoint.as_uri(), type=types.FileChangeType.Deleted)]
        )
    )
    await recorder.wait(checkpoint.as_uri(), lambda p: not p.diagnostics)


async def test_checkpoints_saved_during_an_inspection_keep_the_worker(
    client: LanguageClient, workspace: Path
) -> None:
    """A run saving faster than a probe: the request in the worker finishes, the worker stays,
    and of the checkpoints saved meanwhile only the newest is inspected."""
    recorder = client.recorder  # type: ignore[attr-defined]
    folder = workspace / "gated"
    started, gate = folder / "forward-started", folder / "open"
    before = await status(client)
    first = save_gated(folder / "gate_0.pt", dead=12)
    changed(client, first)
    await until(started.exists, "the first inspection's forward to start")
    held = await status(client)
    assert held["running"] == [first.as_uri()] and held["workerPid"] is not None
    later = [save_gated(folder / f"gate_{i}.pt", dead=12 + 4 * i) for i in (1, 2)]
    for path in later:  # two saves while the first request is held in the worker
        changed(client, path)
    newest = later[-1].as_uri()
    queued = await state_until(
        client, lambda state: state["queued"] == [newest], "the newest checkpoint to wait"
    )
    assert queued["running"] == [first.as_uri()] and queued["workerPid"] == held["workerPid"]
    gate.touch()
    probed = await recorder.wait(newest, lambda p: "NP301" in codes(p))
    assert "20 of 32" in next(d.message for d in probed.diagnostics if d.code == "NP301")
    await idle(client)
    after = await status(client)
    assert after["workerPid"] == held["workerPid"]  # never killed, never restarted
    assert after["history"][len(before["history"]) :] == [
        {"uri": first.as_uri(), "outcome": "superseded"},
        {"uri": newest, "outcome": "done"},
    ]
    # The superseded request's results were not published over the newer ones; the checkpoint
    # saved in between was never inspected.
    assert not getattr(recorder.latest(first.as_uri()), "diagnostics", None)
    assert not any(p.diagnostics for p in recorder.history.get(later[0].as_uri(), []))
    script = recorder.latest((folder / "train_gated.py").as_uri())
    dead = [d for d in script.diagnostics if d.code == "NP301"]
    assert len(dead) == 1 and dead[0].message.startswith("gate_2.pt"), dead


async def test_a_superseded_probe_past_its_grace_is_killed(
    client: LanguageClient, workspace: Path
) -> None:
    """A superseded request that runs on past `supersededGrace` (here a stuck forward) is
    killed, and the newest checkpoint is inspected in a fresh worker."""
    recorder = client.recorder  # type: ignore[attr-defined]
    await reconfigure(client, {"trusted": True, "supersededGrace": 0.5})
    folder = workspace / "gated"
    started, gate = folder / "forward-started", folder / "open"
    gate.unlink()
    started.unlink()
    before = await status(client)
    stuck = save_gated(folder / "gate_3.pt", dead=8)
    changed(client, stuck)
    await until(started.exists, "the stuck forward to start")
    pid = (await status(client))["workerPid"]
    newest = save_gated(folder / "gate_4.pt", dead=24)
    changed(client, newest)
    after = await state_until(
        client,
        lambda state: (
            state["history"][len(before["history"]) :][:1]
            == [{"uri": stuck.as_uri(), "outcome": "cancelled"}]
        ),
        "the stuck request to be stopped",
    )
    assert not after["queued"] or after["queued"] == [newest.as_uri()]
    gate.touch()
    probed = await recorder.wait(newest.as_uri(), lambda p: "NP301" in codes(p))
    assert "24 of 32" in next(d.message for d in probed.diagnostics if d.code == "NP301")
    assert (await status(client))["workerPid"] not in (None, pid)
    assert not recorder.latest(stuck.as_uri()).diagnostics  # its first phase's were cleared
    await idle(client)
