"""No workspace module shadows ours: a checkout holding `numpy.py`, `json.py`, `pygls/` or an
`nnprobe/` package (corpus_shadowing.py plants one of each, every one creating its own sentinel
when imported) is inspected through each entry point, launched the way users launch it, with the
checkout as working directory, trusted and untrusted. Nothing may be imported from it, and the
inspection must give the result it gives in the same folder without those files.

Entry points: the `nnprobe` command (the console script); the probe worker (WorkerClient started
in the checkout by a parent whose own import path holds it, as `python -m nnprobe` leaves it); the
language server as the extension starts it (`python -P -m nnprobe serve`) and as an editor
configured with the command starts it (`nnprobe serve`), both with the lint process and the worker
they start. Each planted module is shown to run when its folder is on the path (the control), and
`python -m nnprobe`, which the README warns against, is shown not to be safe.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")

from corpus_shadowing import (  # noqa: E402
    SHADOWED,
    plant,
    refused_pickle,
    safetensors_file,
    state_dict,
    tiny_onnx,
)
from lsp.lsp_helpers import make_client  # noqa: E402
from lsp.lsp_scripts import BUGGY  # noqa: E402
from lsp.runtime_workspace import changed, idle  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient, client_capabilities  # noqa: E402

import nnprobe.core.isolation  # noqa: E402, F401  (imported before a test puts a checkout on sys.path)
from nnprobe.probe.factory import FactorySpec  # noqa: E402
from nnprobe.probe.worker_client import WorkerClient  # noqa: E402

NNPROBE = Path(sys.executable).with_name("nnprobe")  # the console script users run
MODEL = """\
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
"""
PYPROJECT = """\
[tool.nnprobe]
models = { "pt/weights.pt" = "model.py:Net", "st/weights.safetensors" = "model.py:Net" }
"""
TIMEOUT = 240.0


@dataclass
class Workspace:
    root: Path
    files: dict[str, Path]  # kind -> checkpoint, each in its own folder (the server shows only
    # the newest checkpoint of a folder)

    def ran(self) -> list[str]:
        """The planted modules that were imported ("unpickled": the refused pickle's payload)."""
        return sorted(p.name.removeprefix("RAN-") for p in self.root.glob("RAN-*"))

    def reset(self) -> None:
        for sentinel in self.root.glob("RAN-*"):
            sentinel.unlink()

    def relative(self) -> list[str]:
        return [str(p.relative_to(self.root)) for p in self.files.values()]


def build(root: Path, shadows: bool) -> Workspace:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    (root / "model.py").write_text(MODEL, encoding="utf-8")
    (root / "train.py").write_text(BUGGY, encoding="utf-8")
    makers: dict[str, Callable[[Path, Path], Path]] = {
        "onnx": tiny_onnx,
        "pt": state_dict,
        "st": safetensors_file,
        "pickled": refused_pickle,
    }
    files = {}
    for kind, make in makers.items():
        (root / kind).mkdir()
        files[kind] = make(root / kind, root / "RAN-unpickled")
    if shadows:
        for name in SHADOWED:
            plant(root, name, root / f"RAN-{name}")
    return Workspace(root, files)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build(tmp_path_factory.mktemp("shadowing") / "checkout", shadows=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build(tmp_path_factory.mktemp("shadowing") / "checkout", shadows=False)


def user_env(**extra: str) -> dict[str, str]:
    """The environment a user's shell gives: none of the test runner's import settings (a
    PYTHONSAFEPATH there would make every test here pass whatever nnprobe does)."""
    dropped = ("NNPROBE_UNTRUSTED", "NNPROBE_WORKER", "PYTHONPATH", "PYTHONSAFEPATH")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return {**env, **extra}


# ------------------------------------------------------------------------------- controls


@pytest.mark.parametrize("name", SHADOWED)
def test_the_planted_module_runs_when_its_folder_is_on_the_path(tmp_path: Path, name: str) -> None:
    """Without this, a planted file that never ran would make every test below pass for nothing;
    it also shows the payload hands the real module over (the run goes on unnoticed)."""
    sentinel = tmp_path / "RAN"
    plant(tmp_path, name, sentinel)
    done = subprocess.run(
        [sys.executable, "-c", f"import {name}; print({name}.__file__)"],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert sentinel.exists()
    assert str(tmp_path) not in done.stdout  # the real module, found after the planted one


def test_python_m_nnprobe_in_the_checkout_is_not_safe(hostile: Workspace) -> None:
    """What the README warns about: Python imports `nnprobe` (and what runpy needs) from the
    working directory before any code of ours runs. `python -P -m nnprobe` imports nothing."""
    hostile.reset()
    command = [sys.executable, "-m", "nnprobe", "--version"]
    done = subprocess.run(command, cwd=hostile.root, env=user_env(), capture_output=True)
    assert done.returncode == 0, done.stderr
    assert "nnprobe" in hostile.ran()
    hostile.reset()
    done = subprocess.run(
        [sys.executable, "-P", *command[1:]], cwd=hostile.root, env=user_env(), capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert hostile.ran() == []


def test_a_child_inherits_no_spelling_of_the_working_directory(tmp_path: Path) -> None:
    from nnprobe.core.isolation import child_environment, inherited_path

    checkout, lib = tmp_path / "checkout", tmp_path / "lib"
    checkout.mkdir()
    lib.mkdir()
    (tmp_path / "link").symlink_to(checkout)
    entries = ["", ".", "src", str(checkout), f"{checkout}/", str(tmp_path / "link"), str(lib)]
    assert inherited_path(entries, cwd=str(checkout)) == [str(lib)]
    env = child_environment({"PYTHONPATH": f":{lib}::src"}, [str(lib)])
    assert env["PYTHONPATH"] == os.pathsep.join([str(lib), "src"])  # as the user wrote it
    assert env["PYTHONSAFEPATH"] == "1"
    assert "PYTHONPATH" not in child_environment({"PYTHONPATH": os.pathsep}, [])


# ---------------------------------------------------------------------------------- the CLI


def cli_findings(*checkouts: Workspace, extra: tuple[str, ...]) -> list[list[tuple[str, ...]]]:
    """`nnprobe inspect --output-format json` in each checkout, run side by side."""
    runs = [
        subprocess.Popen(
            [str(NNPROBE), "inspect", "--output-format", "json", *extra, *ws.relative()],
            cwd=ws.root,
            env=user_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ws in checkouts
    ]
    results = []
    for run in runs:
        try:
            out, err = run.communicate(timeout=TIMEOUT)
        finally:
            run.kill()
        assert run.returncode in (0, 1) and "Traceback" not in err, err
        found = json.loads(out)["findings"]
        results.append(sorted((f["path"], f["code"], f["message"]) for f in found))
    return results


@pytest.mark.parametrize("extra", [(), ("--untrusted",)], ids=["trusted", "untrusted"])
def test_cli_in_a_checkout_imports_nothing_from_it(
    hostile: Workspace, clean: Workspace, extra: tuple[str, ...]
) -> None:
    hostile.reset()
    found, normal = cli_findings(hostile, clean, extra=extra)
    assert hostile.ran() == []
    assert found == normal
    # The worker did run: the ONNX model was probed (no NP904 "the probe worker stopped").
    assert not [f for f in found if f[1] >= "NP9" and f[0].endswith(".onnx")], found


# ------------------------------------------------------------------------------- the worker


def jobs(ws: Workspace, trusted: bool) -> list[dict[str, Any]]:
    factory = FactorySpec(ws.root / "model.py", "Net").to_dict()
    common = {"trusted": trusted, "allow_pickle": False}
    return [
        {"checkpoint": str(ws.files["onnx"]), "display": "tiny.onnx", **common},
        {"checkpoint": str(ws.files["pt"]), "display": "w.pt", "factory": factory, **common},
        {"checkpoint": str(ws.files["st"]), "display": "w.st", "factory": factory, **common},
        {"checkpoint": str(ws.files["pickled"]), "display": "whole.pth", **common},
    ]


def outcome(response: dict[str, Any]) -> Any:
    if "error" in response:
        return ("error", response["error"]["code"], response["error"]["message"])
    findings = response["result"]["findings"]
    return ("result", sorted((f["code"], f["message"]) for f in findings))


@pytest.fixture(scope="module")
def workers(hostile: Workspace, clean: Workspace) -> Iterator[dict[Path, WorkerClient]]:
    """One worker per checkout (trust is per job), each started in it by a parent that has it on
    its own sys.path (as '' and as its absolute path: what `python -c` and `python -m` put
    there), with a PYTHONPATH holding an empty entry (`PYTHONPATH=$PYTHONPATH:/x` with
    PYTHONPATH unset), which Python reads as the working directory."""
    clients: dict[Path, WorkerClient] = {}
    hostile.reset()
    with pytest.MonkeyPatch.context() as env:
        for name in ("PYTHONSAFEPATH", "NNPROBE_UNTRUSTED", "NNPROBE_WORKER"):
            env.delenv(name, raising=False)
        env.setenv("PYTHONPATH", os.pathsep + str(Path(__file__).parent))
        for ws in (hostile, clean):
            with pytest.MonkeyPatch.context() as place:
                place.chdir(ws.root)
                place.setattr(sys, "path", ["", str(ws.root), *sys.path])
                clients[ws.root] = client = WorkerClient()
                client.start()
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_worker_in_a_checkout_imports_nothing_from_it(
    hostile: Workspace, clean: Workspace, workers: dict[Path, WorkerClient], trusted: bool
) -> None:
    answers = {
        ws.root: [
            outcome(workers[ws.root].request("probe", job, TIMEOUT)) for job in jobs(ws, trusted)
        ]
        for ws in (hostile, clean)
    }
    assert hostile.ran() == []
    onnx, pt, st, pickled = answers[hostile.root]
    assert answers[hostile.root] == answers[clean.root]
    assert onnx[0] == "result" and pickled[1] == "NP902", answers[hostile.root]
    if trusted:  # the factory was imported through the trusted path and the probe ran
        assert pt[0] == st[0] == "result", answers[hostile.root]


# ---------------------------------------------------------------------- the language server

LAUNCHES = {
    # client-vscode/src/interpreter.ts serverLaunch (its cwd is the extension's folder; here the
    # checkout, the worst case)
    "extension": [sys.executable, "-P", "-m", "nnprobe", "serve"],
    "command": [str(NNPROBE), "serve"],  # Neovim, Emacs: `cmd = {"nnprobe", "serve"}`
}


async def published(client: LanguageClient, path: Path, code: str) -> set[str]:
    """The codes of the latest publish on `path`, once one holds `code`."""
    recorder = client.recorder  # type: ignore[attr-defined]
    latest = recorder.latest(path.as_uri())
    if latest is None or code not in {str(d.code) for d in latest.diagnostics}:
        wanted = recorder.expect(
            path.as_uri(), lambda p: code in {str(d.code) for d in p.diagnostics}
        )
        latest = await asyncio.wait_for(wanted, TIMEOUT)
    return {str(d.code) for d in latest.diagnostics}


def latest_codes(client: LanguageClient, path: Path) -> set[str]:
    latest = client.recorder.latest(path.as_uri())  # type: ignore[attr-defined]
    assert latest is not None, f"nothing published for {path.name}"
    return {str(d.code) for d in latest.diagnostics}


@pytest.mark.asyncio
@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
@pytest.mark.parametrize("launch", list(LAUNCHES))
async def test_language_server_in_a_checkout_imports_nothing_from_it(
    hostile: Workspace, launch: str, trusted: bool
) -> None:
    hostile.reset()
    settings = {"debounce": 50, "progressDelay": 0, "trusted": trusted, "probeTimeout": TIMEOUT}
    client = make_client()
    await client.start_io(*LAUNCHES[launch], cwd=hostile.root, env=user_env())
    try:
        client.set_configuration(settings, section="nnprobe")
        root = hostile.root.as_uri()
        await client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),
                root_uri=root,
                workspace_folders=[types.WorkspaceFolder(uri=root, name="checkout")],
                initialization_options=settings,
            )
        )
        train = hostile.root / "train.py"
        client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(train.as_uri(), "python", 1, BUGGY)
            )
        )
        changed(client, *hostile.files.values())
        # The lint process linted the script, the refused pickle was read; then the worker
        # probed the ONNX model and, trusted, the state_dicts (NP905 for them when untrusted).
        assert "NP104" in await published(client, train, "NP104")
        assert "NP902" in await published(client, hostile.files["pickled"], "NP902")
        await idle(client, TIMEOUT)
        onnx = latest_codes(client, hostile.files["onnx"])
        assert not {c for c in onnx if c >= "NP9"}, onnx
        for kind in ("pt", "st"):
            weights = latest_codes(client, hostile.files[kind])
            assert ("NP905" in weights) is not trusted, weights
            assert not {c for c in weights if c >= "NP9" and c != "NP905"}, weights
        assert hostile.ran() == []
    finally:
        await client.shutdown_session()
