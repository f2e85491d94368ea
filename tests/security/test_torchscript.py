"""TorchScript archives are programs: untrusted they are refused like pickles (NP902) and never
run; trusted and opted in they run only in the worker, under its budget, and what they print never
reaches nnprobe's stdout.

The archives are real `torch.jit.script(...).save(...)` files (corpus_torchscript.py) whose
scripted `__setstate__` writes a sentinel with `torch.save` and prints a GitHub workflow command,
loops, allocates 8 GB or reads a file outside the workspace, or whose `forward` writes; plus
crafted archives aimed at the reader that takes their weights without running them. The first
test proves each payload runs when the archive is loaded the ordinary way.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import pytest_lsp  # noqa: E402
from corpus_torchscript import (  # noqa: E402
    CASES,
    PWNED,
    LoopsInForward,
)
from lsp.lsp_helpers import initialize, serve  # noqa: E402
from lsp.runtime_workspace import changed  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402

from nnprobe.core import trust  # noqa: E402
from nnprobe.probe import loading  # noqa: E402
from nnprobe.probe.loading import LoadError, WorkerOnly, load_checkpoint  # noqa: E402
from nnprobe.probe.worker_client import WorkerClient  # noqa: E402

BY_NAME = {case.name: case for case in CASES}
SAVES = BY_NAME["torchscript-setstate-saves-and-prints"].build
FORWARD = BY_NAME["torchscript-forward-writes"].build
LOOPS = BY_NAME["torchscript-setstate-loops"].build


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (trust.ENV, "NNPROBE_WORKER")}
    return {**env, **extra}


def nnprobe(cwd: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "nnprobe", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done, time.monotonic() - start


def findings_by_file(stdout: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for finding in json.loads(stdout)["findings"]:
        found.setdefault(Path(finding["path"]).name, []).append(finding)
    return found


def message(findings: list[dict[str, Any]], code: str) -> str:
    return " ".join(f["message"] for f in findings if f["code"] == code)


def corpus(root: Path) -> list[tuple[Any, Path, Path]]:
    """Every case in its own folder: (case, archive, sentinel)."""
    built = []
    for case in CASES:
        folder = root / case.name
        folder.mkdir(parents=True)
        sentinel = folder / "SENTINEL"
        built.append((case, case.build(folder, sentinel), sentinel))
    return built


# ------------------------------------------------------------------ the payloads are real

LOAD_ALL = """
import sys, torch
for path in sys.argv[1:]:
    module = torch.jit.load(path)
    module(torch.randn(1, 4))
    print("weight", getattr(module, "weight", torch.zeros(1)).flatten().tolist())
"""


def test_the_payloads_are_real(tmp_path: Path) -> None:
    """Loaded the ordinary way, each archive writes its sentinel (at load, or in forward), prints
    its workflow command, reads the file outside, loops, or asks for 8 GB."""
    names = ["torchscript-setstate-saves-and-prints", "torchscript-named.onnx",
             "torchscript-forward-writes", "torchscript-setstate-reads-outside"]  # fmt: skip
    built = {case.name: (path, sentinel) for case, path, sentinel in corpus(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", LOAD_ALL, *(str(built[n][0]) for n in names)],
        capture_output=True, text=True, timeout=120, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert all(built[n][1].exists() for n in names)
    assert PWNED in done.stdout.splitlines()
    assert "weight [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]" in done.stdout  # the outside file

    looping, sentinel = built["torchscript-setstate-loops"]
    process = subprocess.Popen([sys.executable, "-c", LOAD_ALL, str(looping)], env=_env())
    try:
        deadline = time.monotonic() + 60
        while not sentinel.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sentinel.exists()
        with pytest.raises(subprocess.TimeoutExpired):
            process.wait(timeout=2)  # still looping
    finally:
        process.kill()
        process.wait()

    huge, sentinel = built["torchscript-setstate-allocates-8gb"]

    def cap() -> None:  # 6 GiB of address space: torch loads, the 8 GB tensor cannot
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))

    done = subprocess.run(
        [sys.executable, "-c", LOAD_ALL, str(huge)],
        capture_output=True, text=True, timeout=120, env=_env(), preexec_fn=cap,
    )  # fmt: skip
    assert sentinel.exists() and done.returncode != 0
    assert "allocate" in done.stderr


# ------------------------------------------------------------------------- the loader


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_loader_refuses_without_running(case: Any, tmp_path: Path) -> None:
    """In this process nothing loads an archive: refused (NP902) without allow-pickle, refused
    untrusted whatever allow-pickle says, and opted in it is the worker's to load."""
    sentinel = tmp_path / "SENTINEL"
    path = case.build(tmp_path, sentinel)
    with pytest.raises(LoadError) as refused:
        load_checkpoint(path)
    assert refused.value.code == case.code
    assert "TorchScript" in refused.value.message and case.says in refused.value.message
    assert "--allow-pickle" in refused.value.message
    with trust.guard(False), pytest.raises(LoadError) as untrusted:
        load_checkpoint(path, allow_pickle=True)
    assert untrusted.value.code == "NP902" and "untrusted" in untrusted.value.message
    with pytest.raises(WorkerOnly) as elsewhere:
        load_checkpoint(path, allow_pickle=True)
    assert "only nnprobe's probe worker loads one" in elsewhere.value.message
    assert not sentinel.exists()


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4), torch.nn.BatchNorm1d(4)
    )


@pytest.mark.parametrize("how", ["script", "trace"])
def test_weights_read_unrun_are_the_archives(how: str, tmp_path: Path) -> None:
    """The weights read without running the archive are torch.jit.load's state_dict, in its
    order, and the layer structure (which activation follows a layer) is the archive's."""
    model = mlp().eval()
    archive = (
        torch.jit.script(model) if how == "script" else torch.jit.trace(model, torch.randn(2, 8))
    )
    archive.save(str(tmp_path / "m.pt"))
    with pytest.raises(LoadError) as refused:
        load_checkpoint(tmp_path / "m.pt")
    unrun = refused.value.unrun
    assert unrun is not None and unrun.kind == "torchscript" and unrun.model is None
    live = torch.jit.load(str(tmp_path / "m.pt"))  # a benign archive, as the oracle
    state = live.state_dict()
    assert list(unrun.tensors) + list(unrun.other) == [
        k for k in state if k in unrun.tensors or k in unrun.other
    ]
    assert set(unrun.tensors) | set(unrun.other) == set(state)
    for name, tensor in state.items():
        array = unrun.tensors.get(name, unrun.other.get(name))
        assert array is not None and (array == tensor.numpy()).all(), name
    from nnprobe.probe.layers import module_structure

    assert unrun.structure == module_structure(live)
    assert unrun.structure.activations == {"0": "relu", "2": "linear"}


def test_worker_process_loads_when_trusted_and_opted_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the worker does with a benign archive: torch.jit.load, the live module kept."""
    monkeypatch.setattr(loading, "_PROGRAMS_HERE", True)
    torch.jit.script(mlp()).save(str(tmp_path / "m.pt"))
    checkpoint = load_checkpoint(tmp_path / "m.pt", allow_pickle=True)
    assert checkpoint.kind == "torchscript" and checkpoint.model is not None
    with trust.guard(False), pytest.raises(LoadError):  # even there, never untrusted
        load_checkpoint(tmp_path / "m.pt", allow_pickle=True)


# ----------------------------------------------------------------------------- the CLI

UNTRUSTED = [
    pytest.param(("--untrusted",), {}, "untrusted", id="flag"),
    pytest.param((), {trust.ENV: "1"}, "untrusted", id="env"),
    pytest.param((), {}, "--allow-pickle", id="default"),
]


@pytest.mark.parametrize(("args", "env", "says"), UNTRUSTED)
def test_cli_refuses_every_archive(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], says: str
) -> None:
    built = corpus(tmp_path)
    paths = [str(path.relative_to(tmp_path)) for _, path, _ in built]
    done, _ = nnprobe(tmp_path, "inspect", "--output-format", "json", *args, *paths, **env)
    assert done.returncode == 1, done.stderr
    found = findings_by_file(done.stdout)  # stdout is one JSON document
    for case, path, sentinel in built:
        said = message(found[path.name], "NP902")
        assert "TorchScript" in said and case.says in said and says in said, (case.name, said)
        assert not sentinel.exists(), case.name
    assert "pwned" not in done.stdout + done.stderr


def test_cli_untrusted_still_runs_the_weight_rules(tmp_path: Path) -> None:
    """Refused, a plain archive's weights are still judged: a NaN weight is NP202 beside NP902."""
    model = mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    torch.jit.script(model).save(str(tmp_path / "nan.pt"))
    done, _ = nnprobe(tmp_path, "inspect", "--untrusted", "--output-format", "json", "nan.pt")
    found = findings_by_file(done.stdout)["nan.pt"]
    assert {f["code"] for f in found} == {"NP902", "NP202"}, found
    assert "`2` holds non-finite values" in message(found, "NP202")


@pytest.mark.parametrize("output", ["github", "sarif"])
def test_cli_outputs_stay_clean_untrusted(tmp_path: Path, output: str) -> None:
    sentinel = tmp_path / "SENTINEL"
    SAVES(tmp_path, sentinel)
    done, _ = nnprobe(tmp_path, "inspect", "--untrusted", "--output-format", output, ".")
    assert done.returncode == 1, done.stderr
    if output == "sarif":
        results = json.loads(done.stdout)["runs"][0]["results"]
        assert [r["ruleId"] for r in results] == ["NP902"]
    else:
        assert [line.split(" ", 1)[0] for line in done.stdout.splitlines()] == ["::error"]
    assert "pwned" not in done.stdout and not sentinel.exists()


def test_cli_trusted_and_opted_in_runs_it_in_the_worker_only(tmp_path: Path) -> None:
    """The control: opted in, the archives do run (their sentinels appear), in the worker: the
    printed workflow command is on no output of nnprobe, the JSON report parses, the weights
    and the probe are reported from the worker's answer."""
    saves, forward = tmp_path / "SAVES", tmp_path / "FORWARD"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    SAVES(tmp_path / "a", saves)
    FORWARD(tmp_path / "b", forward)
    args = ("inspect", "--allow-pickle", "--select", "NP2,NP3,NP9")
    done, _ = nnprobe(tmp_path, *args, "--output-format", "json", ".")
    assert done.returncode in (0, 1), done.stderr
    found = findings_by_file(done.stdout)
    assert saves.exists()
    assert not [f for fs in found.values() for f in fs if f["code"] in ("NP901", "NP902")], found
    assert "pwned" not in done.stdout + done.stderr
    saves.unlink()
    done, _ = nnprobe(tmp_path, *args, "--no-probe", "--output-format", "github", ".")
    assert saves.exists() and done.returncode in (0, 1), done.stderr
    assert not [line for line in done.stdout.splitlines() if "pwned" in line]


def test_cli_a_looping_archive_ends_as_np904_within_its_budget(tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    LOOPS(tmp_path, sentinel)
    done, seconds = nnprobe(
        tmp_path, "inspect", "--allow-pickle", "--no-probe", "--probe-timeout", "5",
        "--output-format", "json", "looping.pt",
    )  # fmt: skip
    found = findings_by_file(done.stdout)["looping.pt"]
    assert [f["code"] for f in found] == ["NP904"], found
    assert "5 s budget" in found[0]["message"]
    assert sentinel.exists()  # it did run, in the worker, and was stopped
    print(f"\nlooping TorchScript archive: NP904 after {seconds:.1f} s (5 s budget + worker start)")
    assert seconds < 90


def test_cli_a_forward_that_loops_is_np904_and_the_weights_are_still_judged(tmp_path: Path) -> None:
    """Trusted, the probe of an archive whose forward loops is stopped at its budget; its weights,
    read without running it, still get the weight rules (a NaN weight: NP202)."""
    sentinel = tmp_path / "SENTINEL"
    model = LoopsInForward(str(sentinel))
    with torch.no_grad():
        model.fc.weight[0, 0] = float("nan")
    torch.jit.script(model).save(str(tmp_path / "loops.pt"))
    done, seconds = nnprobe(
        tmp_path, "inspect", "--allow-pickle", "--probe-timeout", "5", "--output-format", "json",
        "loops.pt",
    )  # fmt: skip
    found = findings_by_file(done.stdout)["loops.pt"]
    assert {f["code"] for f in found} == {"NP904", "NP202"}, found
    assert "the weight rules ran on its weights as read without running it" in message(
        found, "NP904"
    )
    print(f"\nforward that loops: NP904 + NP202 after {seconds:.1f} s (5 s budget + worker start)")


# -------------------------------------------------------------------------- the worker


def jobs(path: Path, root: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    base = {"checkpoint": str(path), "display": path.name, "allow_pickle": True}
    return {
        "probe": ("probe", base),
        "checkpoint": ("checkpoint", {**base, "config": {"root": str(root), "run_probes": True}}),
        "inspect": ("inspect", {**base, "root": str(root)}),
        "picture": ("picture", {**base, "kind": "filters"}),
    }


def refusal(response: dict[str, Any]) -> str:
    if "error" in response:
        return f"{response['error']['code']}: {response['error']['message']}"
    return " ".join(f"{f['code']}: {f['message']}" for f in response["result"]["findings"])


@pytest.mark.parametrize("trusted", [False, None], ids=["false", "unsaid"])
@pytest.mark.parametrize("method", ["probe", "checkpoint", "inspect", "picture"])
def test_worker_refuses_untrusted_jobs(
    worker: WorkerClient, tmp_path: Path, method: str, trusted: object
) -> None:
    for build, name in ((SAVES, "saves"), (FORWARD, "forward")):
        folder = tmp_path / name
        folder.mkdir()
        sentinel = folder / "SENTINEL"
        verb, params = jobs(build(folder, sentinel), folder)[method]
        if trusted is not None:
            params = {**params, "trusted": trusted}
        said = refusal(worker.request(verb, params, timeout=120))
        assert "NP902" in said and "TorchScript" in said and "untrusted" in said, said
        assert not sentinel.exists()


def test_worker_checkpoint_job_trusted(worker: WorkerClient, tmp_path: Path) -> None:
    """The control for the worker: a trusted job runs the archive there, and its print stays on
    the worker's stderr (the protocol stream still answers)."""
    sentinel = tmp_path / "SENTINEL"
    verb, params = jobs(SAVES(tmp_path, sentinel), tmp_path)["checkpoint"]
    response = worker.request(verb, {**params, "trusted": True}, timeout=120)
    assert "result" in response, response
    assert sentinel.exists()


def test_worker_checkpoint_job_trusted_allocation_is_np904(
    worker: WorkerClient, tmp_path: Path
) -> None:
    """Trusted, an archive asking for 8 GB at load meets the job's memory budget (the worker's
    address-space cap): NP904, and the worker answers the next job."""
    sentinel = tmp_path / "SENTINEL"
    path = BY_NAME["torchscript-setstate-allocates-8gb"].build(tmp_path, sentinel)
    verb, params = jobs(path, tmp_path)["checkpoint"]
    response = worker.request(verb, {**params, "trusted": True}, timeout=120, memory_limit=2**29)
    said = refusal(response)
    assert sentinel.exists() and "NP904" in said and "memory" in said, said
    assert worker.request("ping", {}, timeout=30)["result"]["pid"] == worker.pid


# ------------------------------------------------------------------ the language server

SERVER = serve(_env())
SETTINGS = {"debounce": 50, "progressDelay": 0, "trusted": False, "probeTimeout": 60}


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "ws"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "pyproject.toml").write_text("[tool.nnprobe]\nallow-pickle = true\n", encoding="utf-8")
    lsp_client.archives = [  # type: ignore[attr-defined]
        (SAVES(root / "a", root / "a" / "SENTINEL"), root / "a" / "SENTINEL"),
        (FORWARD(root / "b", root / "b" / "SENTINEL"), root / "b" / "SENTINEL"),
    ]
    lsp_client.set_configuration(SETTINGS, section="nnprobe")
    await initialize(lsp_client, root, SETTINGS)
    yield
    await lsp_client.shutdown_session()


async def published_with(recorder: Any, uri: str, code: str, seconds: float = 180.0) -> Any:
    """The first publish on `uri` holding `code`: the first inspection starts the worker, which
    imports torch, which takes longer than the recorder's own wait on a loaded machine."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            return await recorder.wait(uri, lambda p: code in {str(d.code) for d in p.diagnostics})
        except TimeoutError:
            if asyncio.get_running_loop().time() > deadline:
                raise


@pytest.mark.asyncio
async def test_language_server_untrusted_workspace(client: LanguageClient) -> None:
    """The repository asks for allow-pickle; the workspace is untrusted: NP902, nothing runs."""
    recorder = client.recorder  # type: ignore[attr-defined]
    for path, sentinel in client.archives:  # type: ignore[attr-defined]
        changed(client, path)
        published = await published_with(recorder, path.as_uri(), "NP902")
        said = " ".join(d.message for d in published.diagnostics if d.code == "NP902")
        assert "TorchScript" in said and "untrusted" in said, said
        assert not sentinel.exists()
