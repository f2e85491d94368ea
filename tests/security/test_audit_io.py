"""Nothing outside the workspace and nnprobe's cache is written, and nothing outside the workspace
is read for model data, while nnprobe looks at the whole hostile corpus.

Every Python process started here (the CLI, the probe worker it or the driver starts) imports a
sitecustomize that installs an audit hook (sys.addaudithook) recording every `open` with a write
mode or flag, every file-system change (mkdir, rename, remove, symlink, truncate), and every open
of a path under the sentinel folders outside the workspace: the ONNX external data targets and the
pickle a workspace symlink points to. HOME, XDG_CACHE_HOME and TMPDIR point at fresh folders, so
the allowed places are exactly: the workspace, nnprobe's cache dir ($XDG_CACHE_HOME/nnprobe) and
the temporary directory. The CLI walks the workspace; the driver then runs each file through the
worker's `probe` and `inspect` jobs, and draws a picture of a benign ONNX model (ONNX Runtime and
matplotlib at work).

The hook sees only what Python opens. The same runs go under strace (native_writes.py) where it
can trace, and the kernel's record of every file created, written, renamed or removed, by any
code, is held to the same places: ONNX Runtime's telemetry wrote its event database under
$XDG_CACHE_HOME/Microsoft from C++, unseen by the hook (the worker now turns it off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import native_writes
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from corpus import CORPUS, raw_pickle  # noqa: E402

HOOK = r"""
import json, os, sys
_LOG = os.open(os.environ["NNPROBE_AUDIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
_WATCHED = tuple(os.environ["NNPROBE_AUDIT_WATCH"].split(os.pathsep))
_CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.symlink", "os.link",
            "os.truncate", "shutil.rmtree"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

def _write(kind, path):
    line = json.dumps({"kind": kind, "path": path, "pid": os.getpid()}) + "\n"
    os.write(_LOG, line.encode())

def _path(value):
    if isinstance(value, bytes):
        value = os.fsdecode(value)
    return os.path.abspath(value) if isinstance(value, str) else None

def _hook(event, args):
    if event == "open":
        path = _path(args[0])
        if path is None:
            return
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & _WRITE_FLAGS)
        if writes:
            _write("write", path)
        elif path.startswith(_WATCHED):
            _write("read", path)
    elif event in _CHANGES:
        for value in args[:2]:
            path = _path(value)
            if path is not None:
                _write("write", path)

sys.addaudithook(_hook)
_write("start", None)
"""

DRIVER = r"""
import json, sys
from pathlib import Path
from nnprobe.probe.worker_client import WorkerClient
workspace = Path(sys.argv[1])
client = WorkerClient()
answers = {}
for path in sorted(p for p in workspace.rglob("*") if p.is_file() or p.is_symlink()):
    if path.suffix not in (".pt", ".pth", ".ckpt", ".onnx", ".safetensors"):
        continue
    probe = client.request("probe", {"checkpoint": str(path), "display": path.name,
                           "allow_pickle": False, "config": {"root": str(workspace)}}, timeout=120)
    inspect = client.request("inspect", {"checkpoint": str(path), "root": str(workspace),
                             "trusted": False}, timeout=120)
    answers[str(path)] = [probe.get("error", {}).get("code"),
                          [f["code"] for f in inspect.get("result", {}).get("findings", [])]]
for path in sys.argv[2:]:  # pictures of benign models: ONNX Runtime and matplotlib run
    picture = client.request("picture", {"kind": "activations", "checkpoint": path,
                             "display": Path(path).name, "trusted": False}, timeout=120)
    answers[path] = [picture.get("result", picture.get("error", {})).get("kind", picture)]
client.close()
print(json.dumps(answers))
"""

PICTURE_MODEL = r"""
import sys, torch
from torch import nn
torch.manual_seed(0)
model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
torch.onnx.export(model.eval(), torch.randn(1, 1, 8, 8), sys.argv[1], dynamo=False,
                  input_names=["x"], dynamic_axes={"x": {0: "n"}})
"""


def _build(base: Path) -> tuple[Path, Path, list[Path]]:
    """(workspace, sentinel, watched folders): every case built in its own folder outside the
    workspace, then the folder holding its model file moved into the workspace; what stays
    behind (ONNX external data targets) is outside it."""
    workspace, cases, outside = base / "ws", base / "cases", base / "outside"
    for folder in (workspace, cases, outside):
        folder.mkdir()
    sentinel = base / "SENTINEL_code_ran"
    # onnx-dotdot's "../../outside/secret.bin", seen from ws/<case>/, is base/outside/secret.bin
    (outside / "secret.bin").write_bytes(bytes(16))
    for case in CORPUS:
        folder = cases / case.name
        folder.mkdir()
        path = case.build(folder, sentinel)
        os.rename(path.parent, workspace / case.name)
    links = workspace / "link-out"
    links.mkdir()
    (links / "linked.pt").symlink_to(raw_pickle(4)(outside, sentinel))
    return workspace, sentinel, [outside, cases]


def _under(path: str, roots: list[Path]) -> bool:
    return any(Path(path).is_relative_to(root) for root in roots)


@dataclass
class Audit:
    base: Path
    workspace: Path
    sentinel: Path
    allowed: list[Path]
    events: list[dict[str, object]]
    findings: list[dict[str, str]]
    answers: dict[str, list[object]]
    native: dict[str, list[str]] | None  # path -> calls, when strace could trace
    why_not_native: str | None


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Audit:
    """The CLI's walk and the driver's worker jobs over the corpus, hooked (and traced)."""
    base = tmp_path_factory.mktemp("audit").resolve()
    workspace, sentinel, watched = _build(base)
    home, cache, tmp, site = base / "home", base / "xdg-cache", base / "tmp", base / "site"
    traces = base / "strace"
    for folder in (home, cache, tmp, site, traces):
        folder.mkdir()
    (site / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    log = base / "audit.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(home),
        "XDG_CACHE_HOME": str(cache),
        "TMPDIR": str(tmp),
        "NNPROBE_AUDIT_LOG": str(log),
        "NNPROBE_AUDIT_WATCH": os.pathsep.join(str(w) for w in watched),
    }
    env.pop("NNPROBE_CACHE_DIR", None)
    env.pop("ORT_DISABLE_TELEMETRY", None)  # nnprobe must turn it off itself
    env.pop("MPLCONFIGDIR", None)
    why_not = native_writes.usable()
    pictures = base / "pictures"  # a benign model outside the workspace, for a picture job
    pictures.mkdir()
    subprocess.run(
        [sys.executable, "-c", PICTURE_MODEL, str(pictures / "conv.onnx")],
        check=True,
        capture_output=True,
        timeout=300,
    )

    def command(argv: list[str], name: str) -> list[str]:
        return argv if why_not else native_writes.traced(argv, traces, name)

    cli = subprocess.run(
        command(
            [sys.executable, "-m", "nnprobe", "inspect", "--output-format", "json", "."], "cli"
        ),
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert "Traceback" not in cli.stderr and cli.returncode in (0, 1), cli.stderr
    driver = subprocess.run(
        command(
            [sys.executable, "-c", DRIVER, str(workspace), str(pictures / "conv.onnx")], "driver"
        ),
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert driver.returncode == 0, driver.stderr
    answers = json.loads(driver.stdout.strip().splitlines()[-1])
    assert answers.pop(str(pictures / "conv.onnx")) == ["image"], driver.stderr
    return Audit(
        base=base,
        workspace=workspace,
        sentinel=sentinel,
        allowed=[workspace, cache / "nnprobe", tmp, Path(os.devnull)],
        events=[json.loads(line) for line in log.read_text().splitlines()],
        findings=json.loads(cli.stdout)["findings"],
        answers=answers,
        native=None if why_not else native_writes.written(traces, workspace),
        why_not_native=why_not,
    )


def test_no_writes_or_outside_reads_over_the_hostile_corpus(audit: Audit) -> None:
    events, workspace, sentinel = audit.events, audit.workspace, audit.sentinel
    findings, answers = audit.findings, audit.answers
    processes = {e["pid"] for e in events if e["kind"] == "start"}
    writes = sorted({str(e["path"]) for e in events if e["kind"] == "write"})
    stray = [p for p in writes if not _under(p, audit.allowed)]
    reads = sorted({str(e["path"]) for e in events if e["kind"] == "read"})
    print(
        f"\naudit: {len(CORPUS) + 1} hostile files, CLI {len(findings)} findings, "
        f"worker {2 * len(answers)} jobs, {len(processes)} hooked processes, {len(events)} "
        f"events, {len(writes)} paths written ({len(stray)} outside workspace/cache/tmp), "
        f"{len(reads)} outside files read, sentinel created: {sentinel.exists()}"
    )
    assert len(processes) >= 3, "the hook must run in the CLI, the driver and the worker"
    assert not stray, stray
    assert not reads, reads
    assert not sentinel.exists()
    codes = {Path(f["path"]).parts[0]: f["code"] for f in findings if f["code"] >= "NP901"}
    # a walk passes over zips that are no checkpoint at all (empty-zip) instead of reporting them
    expected = {case.name: case.code for case in CORPUS if case.name != "empty-zip"}
    assert codes == {"link-out": "NP901", **expected}, codes
    assert len(answers) == len(CORPUS) + 1, answers
    wanted = {"link-out": "NP901", **{case.name: case.code for case in CORPUS}}
    for path, (probe, inspect) in answers.items():
        code = wanted[Path(path).relative_to(workspace).parts[0]]
        assert probe == code and inspect == [code], (path, probe, inspect)


def test_no_native_writes_outside_over_the_hostile_corpus(audit: Audit) -> None:
    """The same runs as the kernel saw them: every process, Python or native code."""
    if audit.native is None:
        pytest.skip(str(audit.why_not_native))
    allowed = [*audit.allowed, audit.base / "audit.jsonl"]  # the hook's own log
    stray = {p: calls for p, calls in audit.native.items() if not _under(p, allowed)}
    print(
        f"\nstrace: {len(audit.native)} paths written by the CLI, the driver and the worker "
        f"({len(stray)} outside workspace/cache/tmp)"
    )
    assert not stray, stray


def test_the_hook_sees_what_it_looks_for(tmp_path: Path) -> None:
    """The control: a process that reads a watched file and writes outside is caught."""
    site, watched = tmp_path / "site", tmp_path / "outside"
    site.mkdir()
    watched.mkdir()
    (watched / "secret.bin").write_bytes(b"x")
    (site / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    log = tmp_path / "audit.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "NNPROBE_AUDIT_LOG": str(log),
        "NNPROBE_AUDIT_WATCH": str(watched),
    }
    code = (
        f"open({str(watched / 'secret.bin')!r}, 'rb').read(); "
        f"open({str(tmp_path / 'stray.txt')!r}, 'w').close(); "
        f"import os; os.mkdir({str(tmp_path / 'made')!r})"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    events = {(e["kind"], e["path"]) for e in map(json.loads, log.read_text().splitlines())}
    assert ("read", str(watched / "secret.bin")) in events
    assert ("write", str(tmp_path / "stray.txt")) in events
    assert ("write", str(tmp_path / "made")) in events


ORT_SESSION = """
import onnx, numpy, onnxruntime
from onnx import TensorProto, helper
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
cpu = ["CPUExecutionProvider"]
session = onnxruntime.InferenceSession(model.SerializeToString(), providers=cpu)
session.run(None, {"x": numpy.ones(1, dtype=numpy.float32)})
"""


@pytest.mark.parametrize("telemetry", ["default", "off"])
def test_the_trace_sees_what_the_hook_cannot(tmp_path: Path, telemetry: str) -> None:
    """The control: ONNX Runtime left to its defaults writes from C++ under $XDG_CACHE_HOME
    (when its build has telemetry, as the Linux wheels since 1.29 do); the trace sees it, the
    hook does not. With ORT_DISABLE_TELEMETRY=1, as the worker sets it, nothing is written."""
    why_not = native_writes.usable()
    if why_not:
        pytest.skip(why_not)
    pytest.importorskip("onnxruntime")
    cache, traces, site = tmp_path / "cache", tmp_path / "traces", tmp_path / "site"
    for folder in (cache, traces, site):
        folder.mkdir()
    (site / "sitecustomize.py").write_text(HOOK, encoding="utf-8")
    log = tmp_path / "audit.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": str(tmp_path),
        "XDG_CACHE_HOME": str(cache),
        "NNPROBE_AUDIT_LOG": str(log),
        "NNPROBE_AUDIT_WATCH": str(tmp_path / "none"),
    }
    env.pop("ORT_DISABLE_TELEMETRY", None)
    if telemetry == "off":
        env["ORT_DISABLE_TELEMETRY"] = "1"
    command = native_writes.traced([sys.executable, "-c", ORT_SESSION], traces, "ort")
    subprocess.run(command, cwd=tmp_path, env=env, check=True, timeout=120)
    native = [p for p in native_writes.written(traces, tmp_path) if _under(p, [cache])]
    hooked = [e for e in map(json.loads, log.read_text().splitlines()) if e["kind"] == "write"]
    assert not [e for e in hooked if _under(str(e["path"]), [cache])]
    if telemetry == "off":
        assert native == [], native
    else:
        if not native:
            pytest.skip("this onnxruntime build writes no telemetry cache")
        assert any("onnxruntime" in p for p in native), native
