"""Workspace trust end to end: an untrusted run imports no workspace Python and unpickles nothing,
whatever the settings say; one test per entry point, each with its trusted control.

Every test builds the same hostile workspace: its pyproject asks for `allow-pickle = true` and
names a model factory; the factory's module imports `canary.py`, which creates the IMPORTED
sentinel (so does building the model); `model_state_dict.pth` is a whole pickled model whose
payload creates the UNPICKLED sentinel; `weights.pt` is a plain state_dict that needs the factory.
Untrusted, each entry point must leave both sentinels absent and say why (NP902 / NP905 naming the
untrusted run). Trusted, the same workspace does run its code: the sentinels appear, so each test
can fail.

Entry points: `nnprobe inspect` (--untrusted, NNPROBE_UNTRUSTED=1, --no-import), the picture
commands and `nnprobe report`, the language server with `trusted` false, and the worker itself
fed a job that claims `allow_pickle` but is not marked trusted (a buggy client).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import pytest_lsp  # noqa: E402
from corpus import fake_state_dict  # noqa: E402
from lsp.lsp_helpers import initialize, serve  # noqa: E402
from lsp.runtime_workspace import changed, idle, until  # noqa: E402
from lsprotocol import types  # noqa: E402
from pytest_lsp import LanguageClient  # noqa: E402

from nnprobe.probe.factory import FactorySpec  # noqa: E402
from nnprobe.probe.worker_client import WorkerClient  # noqa: E402

# The whole pickled model's class lives in corpus.py: a trusted unpickler must be able to import it.
CORPUS_DIR = Path(__file__).resolve().parent
PYPROJECT = """\
[tool.nnprobe]
allow-pickle = true
models = { "weights.pt" = "model.py:Net" }
"""
CANARY = """\
from pathlib import Path

Path(__file__).with_name("IMPORTED").write_text("workspace code ran")
"""
MODEL = """\
from pathlib import Path

import canary  # noqa: F401
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        Path(__file__).with_name("IMPORTED").write_text("workspace code ran")
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x)
"""


@dataclass
class Workspace:
    root: Path
    whole: Path  # a whole pickled model: loading it runs its payload
    weights: Path  # a state_dict: probing it imports model.py
    graph: Path  # an ONNX model, probed with inputs from a callable in model.py

    @property
    def imported(self) -> Path:
        return self.root / "IMPORTED"

    @property
    def unpickled(self) -> Path:
        return self.root / "UNPICKLED"

    def ran(self) -> list[str]:
        return [p.name for p in (self.imported, self.unpickled) if p.exists()]


def build(root: Path) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (("pyproject.toml", PYPROJECT), ("canary.py", CANARY), ("model.py", MODEL)):
        (root / name).write_text(text, encoding="utf-8")
    # Its own run folder: the server shows only the newest checkpoint of a folder.
    (root / "pickled").mkdir(exist_ok=True)
    whole = fake_state_dict(root / "pickled", root / "UNPICKLED")
    weights = root / "weights.pt"
    torch.manual_seed(0)
    torch.save({"fc.weight": torch.randn(2, 4) * 0.5, "fc.bias": torch.zeros(2)}, weights)
    graph = root / "tiny.onnx"
    helper = onnx.helper
    w = helper.make_tensor("W", onnx.TensorProto.FLOAT, [4, 2], [0.5] * 8)
    tiny = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 2])],
        [w],
    )
    graph.write_bytes(helper.make_model(tiny).SerializeToString())
    return Workspace(root, whole, weights, graph)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return build(tmp_path / "ws")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NNPROBE_UNTRUSTED", "NNPROBE_WORKER")}
    env["PYTHONPATH"] = os.pathsep.join([str(CORPUS_DIR), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    return {**env, **extra}


@dataclass
class Cli:
    """`nnprobe ...` in the workspace: in this process (fast), or as a real subprocess."""

    ws: Workspace
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str, subprocess_: bool = False, **env: str) -> tuple[int, str, str]:
        if subprocess_:
            done = subprocess.run(
                [sys.executable, "-m", "nnprobe", *args],
                cwd=self.ws.root,
                env=_env(**env),
                capture_output=True,
                text=True,
                timeout=180,
            )
            return done.returncode, done.stdout, done.stderr
        from nnprobe.cli import main

        with self.monkeypatch.context() as patch:
            patch.chdir(self.ws.root)
            patch.delenv("NNPROBE_UNTRUSTED", raising=False)
            for key, value in env.items():
                patch.setenv(key, value)
            self.capsys.readouterr()
            code = main(list(args))
            out, err = self.capsys.readouterr()
        return code, out, err

    def inspect(self, *args: str, **env: Any) -> dict[str, list[dict[str, Any]]]:
        """Findings per file name of `nnprobe inspect --output-format json` on both checkpoints."""
        code, out, err = self(
            "inspect", "--output-format", "json", "--select", "NP2,NP3,NP9", *args,
            "pickled/model_state_dict.pth", "weights.pt", **env,
        )  # fmt: skip
        assert code in (0, 1) and "Traceback" not in err, err
        found: dict[str, list[dict[str, Any]]] = {}
        for finding in json.loads(out)["findings"]:
            found.setdefault(Path(finding["path"]).name, []).append(finding)
        return found


@pytest.fixture
def cli(ws: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(ws, monkeypatch, capsys)


def said(findings: list[dict[str, Any]], code: str) -> str:
    return " ".join(f["message"] for f in findings if f["code"] == code)


UNTRUSTED_WAYS = [
    pytest.param(("--untrusted",), {"subprocess_": True}, "--untrusted", id="flag"),
    pytest.param((), {"NNPROBE_UNTRUSTED": "1"}, "NNPROBE_UNTRUSTED=1", id="env"),
    pytest.param(("--no-import",), {}, "--no-import", id="no-import"),
]


@pytest.mark.parametrize(("args", "env", "named"), UNTRUSTED_WAYS)
def test_cli_inspect_untrusted_runs_no_workspace_code(
    cli: Cli, ws: Workspace, args: tuple[str, ...], env: dict[str, Any], named: str
) -> None:
    found = cli.inspect(*args, **env)
    assert ws.ran() == []
    assert "untrusted" in said(found["model_state_dict.pth"], "NP902")
    assert named in said(found["weights.pt"], "NP905")
    assert not [f for f in found["weights.pt"] if f["code"].startswith(("NP3", "NP4"))]


def test_cli_inspect_trusted_honours_the_repository_allow_pickle(cli: Cli, ws: Workspace) -> None:
    """The control: run by the user (trusted, like pytest), the config's opt-in takes effect."""
    found = cli.inspect()
    assert ws.ran() == ["IMPORTED", "UNPICKLED"]
    assert "NP902" not in {f["code"] for f in found.get("model_state_dict.pth", [])}
    assert "NP905" not in {f["code"] for f in found.get("weights.pt", [])}


@pytest.mark.parametrize(("args", "env", "named"), UNTRUSTED_WAYS)
def test_cli_allow_pickle_contradicts_an_untrusted_run(
    cli: Cli, ws: Workspace, args: tuple[str, ...], env: dict[str, Any], named: str
) -> None:
    env.pop("subprocess_", None)
    code, _, err = cli("inspect", "--allow-pickle", *args, "pickled/model_state_dict.pth", **env)
    assert code == 2
    assert f"--allow-pickle cannot be used with {named}" in err
    assert ws.ran() == []


def test_picture_commands_untrusted(cli: Cli, ws: Workspace) -> None:
    code, _, err = cli("filters", "pickled/model_state_dict.pth", "-o", "a.png", "--untrusted")
    assert code == 2 and "NP902" in err and "untrusted" in err
    code, _, err = cli("activations", "weights.pt", "-o", "b.png", "--untrusted")
    assert code == 2 and "not allowed here (--untrusted" in err
    code, _, err = cli("report", ".", "-o", "report.html", "--untrusted")
    assert code == 0, err
    html = (ws.root / "report.html").read_text(encoding="utf-8")
    assert "NP902" in html and "NP905" in html and "untrusted" in html
    assert ws.ran() == []
    # The control: the same picture, trusted, unpickles the model as the config asks.
    code, _, err = cli("filters", "pickled/model_state_dict.pth", "-o", "a.png")
    assert "NP902" not in err
    assert ws.unpickled.exists()


# ---------------------------------------------------------------------------- the worker


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerClient]:
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _env()["PYTHONPATH"]
    try:
        client = WorkerClient()
        client.start()
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    yield client
    client.close()


JOBS = ["probe-whole", "probe-factory", "probe-callable", "picture-whole", "picture-factory",
        "inspect-whole"]  # fmt: skip


def job(ws: Workspace, name: str, trusted: object) -> tuple[str, dict[str, Any]]:
    """A job that could run workspace code, asking for pickles; `trusted` None leaves it unsaid."""
    factory = FactorySpec(ws.root / "model.py", "Net").to_dict()
    whole = {"checkpoint": str(ws.whole), "display": "whole", "allow_pickle": True}
    weights = {"checkpoint": str(ws.weights), "display": "w", "allow_pickle": True}
    jobs: dict[str, tuple[str, dict[str, Any]]] = {
        "probe-whole": ("probe", whole),
        "probe-factory": ("probe", {**weights, "factory": factory}),
        "probe-callable": (
            "probe",
            {
                "checkpoint": str(ws.graph),
                "display": "g",
                "probe": {"script": str(ws.root / "model.py"), "callable": "Net"},
            },
        ),
        "picture-whole": ("picture", {**whole, "kind": "filters"}),
        "picture-factory": ("picture", {**weights, "kind": "filters", "factory": factory}),
        "inspect-whole": (
            "inspect",
            {
                "checkpoint": str(ws.whole),
                "root": str(ws.root),
                "config_file": str(ws.root / "pyproject.toml"),
                "allow_pickle": True,
            },
        ),
    }
    method, params = jobs[name]
    return method, params if trusted is None else {**params, "trusted": trusted}


def refusal(response: dict[str, Any]) -> str:
    """The error or findings that say why nothing ran."""
    if "error" in response:
        return f"{response['error']['code']}: {response['error']['message']}"
    findings = response["result"]["findings"]
    return " ".join(f"{f['code']}: {f['message']}" for f in findings if f["code"] >= "NP9")


@pytest.mark.parametrize("trusted", [False, None, "yes"], ids=["false", "unsaid", "truthy"])
@pytest.mark.parametrize("name", JOBS)
def test_worker_refuses_untrusted_jobs_whatever_they_ask(
    worker: WorkerClient, tmp_path: Path, name: str, trusted: object
) -> None:
    ws = build(tmp_path / "ws")
    method, params = job(ws, name, trusted)
    said = refusal(worker.request(method, params, timeout=120))
    assert ws.ran() == []
    assert "untrusted" in said, said


@pytest.mark.parametrize("name", JOBS)
def test_worker_runs_trusted_jobs(worker: WorkerClient, tmp_path: Path, name: str) -> None:
    """The control: the same jobs marked trusted do run the workspace's code."""
    ws = build(tmp_path / "ws")
    method, params = job(ws, name, True)
    worker.request(method, params, timeout=120)
    assert ws.ran(), refusal(worker.request(method, params, timeout=120))


# ---------------------------------------------------------------------- the language server

SERVER = serve(_env())
SETTINGS = {"debounce": 50, "progressDelay": 0, "trusted": False, "probeTimeout": 60}


@pytest_lsp.fixture(config=SERVER)
async def client(lsp_client: LanguageClient, tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "ws"
    lsp_client.workspace = build(root)  # type: ignore[attr-defined]
    lsp_client.set_configuration(SETTINGS, section="nnprobe")
    await initialize(lsp_client, root, SETTINGS)
    yield
    await lsp_client.shutdown_session()


def _codes(params: types.PublishDiagnosticsParams) -> set[str]:
    return {str(d.code) for d in params.diagnostics}


@pytest.mark.asyncio
async def test_language_server_untrusted_workspace(client: LanguageClient) -> None:
    ws: Workspace = client.workspace  # type: ignore[attr-defined]
    recorder = client.recorder  # type: ignore[attr-defined]
    changed(client, ws.whole)
    whole = await recorder.wait(ws.whole.as_uri(), lambda p: "NP902" in _codes(p))
    assert "untrusted" in " ".join(d.message for d in whole.diagnostics if d.code == "NP902")
    changed(client, ws.weights)
    weights = await recorder.wait(ws.weights.as_uri(), lambda p: "NP905" in _codes(p))
    assert not {c for c in _codes(weights) if c.startswith(("NP3", "NP4"))}
    for uri in (ws.whole.as_uri(), ws.weights.as_uri()):
        picture = await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="nnprobe.filters", arguments=[uri])
        )
        assert picture["kind"] == "unavailable", picture
        assert "untrusted" in picture["reason"], picture
    assert ws.ran() == []
    # The control: trusting the workspace re-inspects what was seen, which now runs its code.
    client.set_configuration({**SETTINGS, "trusted": True}, section="nnprobe")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await until(lambda: ws.ran() == ["IMPORTED", "UNPICKLED"], "the trusted re-inspection")
    await idle(client)


@pytest.mark.parametrize(
    ("value", "untrusted"),
    [("1", True), ("true", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_the_environment_variable(value: str, untrusted: bool) -> None:
    from nnprobe.core.trust import env_untrusted

    assert env_untrusted({"NNPROBE_UNTRUSTED": value}) is untrusted
    assert env_untrusted({}) is False
