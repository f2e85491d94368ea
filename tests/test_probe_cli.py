"""End to end through the CLI: a real training script trains on digits and saves state_dicts;
`nnprobe inspect` finds the model that made them, probes it in the worker and puts the runtime
findings on the script's layer lines as well as on the checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")

from nnprobe.cli import main  # noqa: E402
from nnprobe.probe import worker_client  # noqa: E402

TRAIN = """
import os

import torch
from sklearn.datasets import load_digits
from torch import nn

HIDDEN = 32
HERE = os.path.dirname(os.path.abspath(__file__))


class Net(nn.Module):
    def __init__(self, hidden=16, classes=10):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(64, 128)
        self.out = nn.Linear(128, 10)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


def make_net():
    return Net(hidden=HIDDEN)


def probe_batch():
    digits = load_digits()
    x = torch.tensor(digits.data[:128] / 16.0, dtype=torch.float32)
    return x, torch.tensor(digits.target[:128])


with open(os.path.join(HERE, "sentinel.txt"), "w") as handle:
    handle.write("the training top level ran")
torch.manual_seed(0)
x, y = probe_batch()
model = Net(hidden=HIDDEN)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.CrossEntropyLoss()
os.makedirs(os.path.join(HERE, "runs"), exist_ok=True)
for epoch in range(2):
    for _ in range(15):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    torch.save(model.state_dict(), os.path.join("runs", f"ckpt_{epoch}.pt"))
"""

SLOW = """
import time

import torch
from torch import nn


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)

    def forward(self, x):
        time.sleep(600)
        return self.fc1(x)
"""


HOG = """
import time

import torch
from torch import nn


class Hog(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)

    def forward(self, x):
        hoard = []
        for _ in range(40):  # up to 2.5 GB, 64 MB at a time
            hoard.append(torch.ones(16 * 2**20))
            time.sleep(0.02)
        return self.fc1(x)
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project whose train.py really trained and saved runs/ckpt_0.pt and runs/ckpt_1.pt, plus
    runs/ckpt_9.pt: ckpt_1 with fc1's bias planted at -50 (every hidden ReLU dead)."""
    root = tmp_path_factory.mktemp("project")
    (root / "train.py").write_text(TRAIN, encoding="utf-8")
    subprocess.run([sys.executable, "train.py"], cwd=root, check=True, timeout=120)
    assert (root / "sentinel.txt").is_file()
    (root / "sentinel.txt").unlink()
    state = torch.load(root / "runs" / "ckpt_1.pt", weights_only=True)
    state["fc1.bias"] = torch.full_like(state["fc1.bias"], -50.0)
    torch.save(state, root / "runs" / "ckpt_9.pt")
    cache = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("NNPROBE_CACHE_DIR")
    os.environ["NNPROBE_CACHE_DIR"] = str(cache)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(cwd)
        if previous is None:
            os.environ.pop("NNPROBE_CACHE_DIR", None)
        else:
            os.environ["NNPROBE_CACHE_DIR"] = previous
        worker_client.shared_client().close()


def inspect(*args: str) -> tuple[int, list[dict[str, object]]]:
    out = Path("report.json")
    code = main(["inspect", *args, "--output-format", "json", "--output", str(out)])
    findings = json.loads(out.read_text(encoding="utf-8"))["findings"]
    out.unlink()
    return code, findings


def codes_at(findings: list[dict[str, object]], path: str) -> set[str]:
    return {str(f["code"]) for f in findings if f["path"] == path}


def line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


def test_discovered_model_puts_dead_relus_on_the_layer_line(trained: Path) -> None:
    _, findings = inspect(".", "--select", "NP2,NP3,NP9")
    dead = [f for f in findings if f["code"] == "NP301"]
    assert {f["path"] for f in dead} == {"runs/ckpt_9.pt", "train.py"}
    on_script = next(f for f in dead if f["path"] == "train.py")
    fc1 = line_of(trained / "train.py", "self.fc1 = nn.Linear(64, hidden)")
    assert on_script["range"]["start"]["line"] == fc1  # type: ignore[index]
    assert str(on_script["message"]).startswith("ckpt_9.pt: ")
    assert "synthetic" in str(on_script["message"])
    # The healthy trained checkpoints: probed, no dead units, and NP201 (an init rule) silent.
    assert "NP301" not in codes_at(findings, "runs/ckpt_0.pt")
    assert not [f for f in findings if f["code"] in ("NP201", "NP905", "NP903", "NP904")]
    # Building the model imported train.py's definitions only: its top level did not run.
    assert not (trained / "sentinel.txt").exists()


def test_no_factory_reports_np905_and_still_runs_the_weight_rules(trained: Path) -> None:
    lone = trained / "lone"
    lone.mkdir(exist_ok=True)
    (lone / "nnprobe.toml").write_text("", encoding="utf-8")  # its own root: nothing to discover
    state = torch.load(trained / "runs" / "ckpt_1.pt", weights_only=True)
    state["fc2.weight"][0, 0] = float("nan")
    torch.save(state, lone / "weights.pt")
    _, findings = inspect("lone/weights.pt", "--config", str(lone / "nnprobe.toml"))
    by_code = {str(f["code"]): f for f in findings}
    assert "NP202" in by_code  # the weight rules ran
    assert "--model train.py:Net" in str(by_code["NP905"]["message"])
    # --model names the factory for every checkpoint given; the NaN reaches the activations.
    _, findings = inspect(
        "lone/weights.pt", "--config", str(lone / "nnprobe.toml"), "--model", "train.py:Net"
    )
    assert "NP905" in str(findings) and "wrong architecture" in str(findings)
    _, findings = inspect(
        "lone/weights.pt",
        "--config",
        str(lone / "nnprobe.toml"),
        "--model",
        "lone/*.pt=train.py:make_net",
        "--select",
        "NP3,NP9",
    )
    assert "NP305" in codes_at(findings, "lone/weights.pt")
    assert "NP905" not in codes_at(findings, "lone/weights.pt")


def test_wrong_architecture_lists_the_keys(trained: Path) -> None:
    _, findings = inspect("runs/ckpt_0.pt", "--model", "train.py:Wide", "--select", "NP9")
    [finding] = findings
    message = str(finding["message"])
    assert finding["code"] == "NP905" and "wrong architecture for the weights" in message
    assert "missing from the checkpoint: hidden.bias, hidden.weight" in message
    assert "not in the model: fc1.bias, fc1.weight, fc2.bias, fc2.weight" in message


def test_no_probe_and_no_import(trained: Path) -> None:
    _, findings = inspect("runs/ckpt_9.pt", "--no-probe", "--select", "NP2,NP3,NP9")
    assert not [f for f in findings if str(f["code"]).startswith(("NP3", "NP9"))]
    _, findings = inspect("runs/ckpt_9.pt", "--no-import", "--select", "NP3,NP9")
    [finding] = findings
    assert finding["code"] == "NP905" and "--no-import" in str(finding["message"])


def test_probe_data_file_and_probe_function(trained: Path) -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    digits = load_digits()
    np.savez(
        "probe.npz",
        x=(digits.data[:100] / 16.0).astype("float32"),
        y=digits.target[:100].astype("int64"),
    )
    _, findings = inspect("runs/ckpt_9.pt", "--probe", "probe.npz", "--select", "NP301")
    assert findings and all("100 inputs from probe.npz" in str(f["message"]) for f in findings)
    _, findings = inspect(
        "runs/ckpt_9.pt",
        "--probe",
        "train.py:probe_batch",
        "--select",
        "NP301",
        "--probe-batch",
        "32",
    )
    assert findings and all("train.py:probe_batch" in str(f["message"]) for f in findings)
    assert not (trained / "sentinel.txt").exists()
    _, findings = inspect("runs/ckpt_9.pt", "--probe", "missing.npz", "--select", "NP9")
    assert [f["code"] for f in findings] == ["NP901"]


def test_runaway_forward_is_stopped_with_np904(trained: Path) -> None:
    slow = trained / "slow"
    slow.mkdir(exist_ok=True)
    (slow / "slow.py").write_text(textwrap.dedent(SLOW), encoding="utf-8")
    torch.manual_seed(0)
    state = {"fc1.weight": torch.randn(32, 64), "fc1.bias": torch.zeros(32)}
    torch.save(state, slow / "slow.pt")
    code, findings = inspect(
        "slow/slow.pt", "--model", "slow/slow.py:Slow", "--probe-timeout", "1", "--select", "NP9"
    )
    [finding] = findings
    assert finding["code"] == "NP904" and "1 s budget" in str(finding["message"])
    # The next probe gets a fresh worker.
    _, findings = inspect("runs/ckpt_9.pt", "--select", "NP301")
    assert {f["path"] for f in findings} == {"runs/ckpt_9.pt", "train.py"}
    shutil.rmtree(slow)


def test_script_activations_let_np201_judge_a_fresh_state_dict(trained: Path) -> None:
    """The state_dict alone does not say that fc1 feeds a ReLU (a functional call in forward);
    the training script does, so the init-scale rule can speak, on both places."""
    from nnprobe.probe.workspace_import import load_object

    torch.manual_seed(0)
    net = load_object(trained / "train.py", "Net")(hidden=32)
    torch.nn.init.normal_(net.fc1.weight, std=1.0)
    torch.save(net.state_dict(), trained / "runs" / "ckpt_init.pt")
    try:
        _, findings = inspect("runs/ckpt_init.pt", "--no-probe", "--select", "NP201")
    finally:
        (trained / "runs" / "ckpt_init.pt").unlink()
    assert {f["path"] for f in findings} == {"runs/ckpt_init.pt", "train.py"}
    assert all("fc1" in str(f["message"]) and "relu" in str(f["message"]) for f in findings)


def test_onnx_and_torchscript_are_probed_without_a_factory(trained: Path) -> None:
    from nnprobe.probe.workspace_import import load_object

    net = load_object(trained / "train.py", "Net")(hidden=32)
    net.load_state_dict(torch.load(trained / "runs" / "ckpt_9.pt", weights_only=True))
    other = trained / "exported"
    other.mkdir(exist_ok=True)
    torch.onnx.export(net, torch.randn(1, 64), str(other / "net.onnx"), dynamo=False)
    torch.jit.trace(net, torch.randn(2, 64)).save(str(other / "net.ts.pt"))
    _, findings = inspect("exported", "--select", "NP301,NP9")
    assert codes_at(findings, "exported/net.onnx") == {"NP301"}
    # TorchScript is a program: refused unless opted in, then loaded and probed in the worker.
    assert codes_at(findings, "exported/net.ts.pt") == {"NP902"}
    _, findings = inspect("exported", "--select", "NP301,NP9", "--allow-pickle")
    assert codes_at(findings, "exported/net.ts.pt") == {"NP301"}


def test_gradient_probe_runs_at_the_scripts_optimizer_settings(trained: Path) -> None:
    from nnprobe.core.config import Config
    from nnprobe.probe.factory import discover, script_context
    from nnprobe.probe.jobs import config_to_dict, run_job
    from nnprobe.probe.train_settings import train_settings

    settings = train_settings(script_context(trained / "train.py"), "train.py", {})
    sgd = line_of(trained / "train.py", "torch.optim.SGD")
    assert (settings.optimizer, settings.lr, settings.loss) == ("SGD", 0.1, "cross_entropy")
    assert settings.optimizer_note == f"train.py:{sgd}"
    spec = discover(trained / "runs" / "ckpt_9.pt", trained).spec
    assert spec is not None
    result = run_job(
        {
            "checkpoint": str(trained / "runs" / "ckpt_9.pt"),
            "display": "runs/ckpt_9.pt",
            "factory": spec.to_dict(),
            "training": settings.to_dict(),
            "config": config_to_dict(Config.default()),
        }
    )
    gradients = [f for f in result["findings"] if f["code"].startswith("NP4")]
    assert gradients, result
    assert {f["data"].get("optimizer_source") for f in gradients} == {f"train.py:{sgd}"}


def test_worker_protocol_answers_by_id_and_rejects_unknown_methods(trained: Path) -> None:
    from nnprobe.worker import handle

    client = worker_client.shared_client()
    answer = client.request("ping", {}, timeout=60)
    assert answer["id"] and isinstance(answer["result"]["pid"], int)
    assert answer["result"]["pid"] != os.getpid()
    assert handle({"id": 7, "method": "nope"}) == {
        "id": 7,
        "error": {"code": "protocol", "message": "unknown method 'nope'"},
    }
    assert handle({"id": 8, "method": "shutdown"}) is None


def test_a_suppression_on_the_layer_line_silences_the_copy_only(trained: Path) -> None:
    script = trained / "train.py"
    original = script.read_text(encoding="utf-8")
    line = "self.fc1 = nn.Linear(64, hidden)"
    script.write_text(original.replace(line, line + "  # nnprobe: ignore[NP301]"), "utf-8")
    try:
        _, findings = inspect("runs/ckpt_9.pt", "--select", "NP301")
    finally:
        script.write_text(original, encoding="utf-8")
    assert {f["path"] for f in findings} == {"runs/ckpt_9.pt"}


def test_a_probe_over_its_memory_budget_is_stopped(trained: Path) -> None:
    from nnprobe.probe.factory import FactorySpec
    from nnprobe.probe.worker_client import WorkerError

    hog = trained / "hog"
    hog.mkdir(exist_ok=True)
    (hog / "hog.py").write_text(textwrap.dedent(HOG), encoding="utf-8")
    torch.save({"fc1.weight": torch.zeros(32, 64), "fc1.bias": torch.zeros(32)}, hog / "h.pt")
    params = {
        "checkpoint": str(hog / "h.pt"),
        "display": "hog/h.pt",
        "trusted": True,
        "factory": FactorySpec(hog / "hog.py", "Hog").to_dict(),
        "config": {"select": ["NP301"]},
    }
    client = worker_client.shared_client()
    with pytest.raises(WorkerError, match="more than its 200 MB memory budget") as caught:
        client.request("probe", params, timeout=120, memory_limit=200 * 2**20)
    assert caught.value.memory and not client.running
    shutil.rmtree(hog)
