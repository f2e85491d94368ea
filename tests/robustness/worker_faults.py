"""Faults injected into a real probe worker, shared by tests/robustness/test_worker_faults.py and
bench/fault_bench.py: a workspace of model factories that fail in the ways user code does (killed
mid-job, stuck, out of memory, raising, returning NaN), one `inject` that runs a real job on one of
them through `WorkerClient` and then a job on a good model, and what came of it.

Nothing here sleeps for a fixed time: the stuck forward blocks on an event nobody sets, and the
kill lands once the forward has touched a flag file.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nnprobe.core.config import Config
from nnprobe.probe.factory import FactorySpec
from nnprobe.probe.jobs import config_to_dict
from nnprobe.probe.worker_client import WorkerClient, WorkerError

# The forwards, by model name; every model has the same layers (one checkpoint serves them all).
FORWARDS = {
    "Good": "return self.fc2(torch.relu(self.fc1(x)))",
    "Stuck": """(HERE / "forward-started").touch()
threading.Event().wait()
return self.fc2(torch.relu(self.fc1(x)))""",
    "Hog": """hoard = torch.empty(HUGE, dtype=torch.uint8)
hoard.fill_(1)
return self.fc2(torch.relu(self.fc1(x))) + hoard[0]""",
    "Raises": 'raise RuntimeError("fault injected: the forward raised")',
    "ReturnsNaN": "return self.fc2(torch.sqrt(self.fc1(x) - 1e3))",
}

HEADER = """\
import threading
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).parent
HUGE = 16 * 2**30  # bytes: more than any job's budget here
"""

CLASS = """

class {name}(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
{body}
"""

FC1 = "        self.fc1 = nn.Linear(64, 32)"
FC2 = "        self.fc2 = nn.Linear(32, 10)"


def model_class(name: str, forward: str) -> str:
    body = "\n".join(" " * 8 + line for line in FORWARDS[forward].splitlines())
    return CLASS.format(name=name, body=body)


def models_source() -> str:
    """models.py: one class per forward."""
    return HEADER + "".join(model_class(name, name) for name in FORWARDS)


def training_script(forward: str, checkpoint: str) -> str:
    """A training script whose Net has `forward` and which saves `checkpoint` (relative to the
    workspace root): what factory discovery finds for that checkpoint."""
    main = f"""

if __name__ == "__main__":
    torch.save(Net().state_dict(), "{checkpoint}")
"""
    return HEADER + model_class("Net", forward) + main


def save_weights(path: Path, dead: int = 0) -> Path:
    """Seeded healthy weights for the models' layers, `dead` of fc1's 32 units never positive."""
    torch.manual_seed(0)
    state = {
        "fc1.weight": torch.randn(32, 64) * (2 / 64) ** 0.5,
        "fc1.bias": torch.zeros(32),
        "fc2.weight": torch.randn(10, 32) * (1 / 32) ** 0.5,
        "fc2.bias": torch.zeros(10),
    }
    state["fc1.bias"][:dead] = -50.0
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


STARTED = "forward-started"
GOOD_TIMEOUT_S = 120.0
MEMORY_BUDGET = 512 * 2**20  # bytes, per job
DEAD = 16  # of fc1's 32 units planted dead in the good checkpoint: NP301 proves the probe ran


def build_workspace(root: Path) -> Path:
    """models.py plus good.pt (half of fc1 dead) and fault.pt (healthy weights) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "models.py").write_text(models_source(), encoding="utf-8")
    save_weights(root / "fault.pt")
    save_weights(root / "good.pt", dead=DEAD)
    return root


def job(root: Path, model: str, checkpoint: str) -> dict[str, Any]:
    """`probe` params for `model` (a class in models.py) on `checkpoint`, as the CLI sends them."""
    path = root / checkpoint
    return {
        "checkpoint": str(path),
        "display": checkpoint,
        "trusted": True,
        "factory": FactorySpec(root / "models.py", model).to_dict(),
        # Activations only: the gradient probe's optimizer steps add time and no fault.
        "config": config_to_dict(Config.default(root=root).with_overrides(ignore=["NP4"])),
    }


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def address_space_cap(pid: int) -> str:
    """The soft 'Max address space' of a process, as /proc/PID/limits shows it."""
    for line in Path(f"/proc/{pid}/limits").read_text(encoding="ascii").splitlines():
        if line.startswith("Max address space"):
            return line.split()[3]
    return "unknown"


@dataclass(frozen=True)
class Fault:
    name: str
    model: str
    code: str  # what the front door reports
    says: str  # in the message
    restarts: bool  # whether the worker must be replaced (it was killed)
    timeout: float = GOOD_TIMEOUT_S
    during: Callable[[WorkerClient, Path, dict[str, Any]], None] | None = None


def _kill_mid_job(client: WorkerClient, root: Path, seen: dict[str, Any]) -> None:
    wait_for((root / STARTED).exists, "the forward to start")
    pid = client.pid
    assert pid is not None
    seen["address_space_cap"] = address_space_cap(pid)  # while the job runs
    os.kill(pid, signal.SIGKILL)


FAULTS = [
    Fault("killed", "Stuck", "NP904", "was killed by SIGKILL", True, during=_kill_mid_job),
    Fault("timeout", "Stuck", "NP904", "longer than its 3 s budget", True, timeout=3.0),
    Fault("out-of-memory", "Hog", "NP904", "ran out of memory", False),
    Fault("forward-raises", "Raises", "NP903", "fault injected: the forward raised", False),
    Fault("returns-nan", "ReturnsNaN", "NP305", "NaN/Inf first appears", False),
]


@dataclass
class Outcome:
    fault: Fault
    code: str | None = None
    message: str = ""
    codes: set[str] = field(default_factory=set)
    restarted: bool = False
    next_ok: bool = False
    next_codes: set[str] = field(default_factory=set)
    seconds: float = 0.0
    seen: dict[str, Any] = field(default_factory=dict)

    @property
    def survived(self) -> bool:
        """Reported as promised, the worker replaced exactly when it had to be, the next job
        on a good model answered."""
        return (
            self.code == self.fault.code
            and self.fault.says in self.message
            and self.restarted == self.fault.restarts
            and self.next_ok
        )


def inject(client: WorkerClient, root: Path, fault: Fault) -> Outcome:
    """Run one job on the faulty model, then one on the good model; say what happened."""
    (root / STARTED).unlink(missing_ok=True)
    client.start()
    pid = client.pid
    outcome = Outcome(fault)
    watcher = None
    if fault.during is not None:
        watcher = threading.Thread(target=fault.during, args=(client, root, outcome.seen))
        watcher.start()
    began = time.monotonic()
    try:
        response = client.request(
            "probe",
            job(root, fault.model, "fault.pt"),
            timeout=fault.timeout,
            memory_limit=MEMORY_BUDGET,
        )
    except WorkerError as exc:  # both front doors report a stopped worker as NP904
        outcome.code, outcome.message = "NP904", exc.message
    else:
        if "error" in response:
            outcome.code = response["error"]["code"]
            outcome.message = response["error"]["message"]
        else:
            findings = response["result"]["findings"]
            outcome.codes = {f["code"] for f in findings}
            match = [f for f in findings if f["code"] == fault.code]
            if match:
                outcome.code, outcome.message = fault.code, match[0]["message"]
    outcome.seconds = time.monotonic() - began
    if watcher is not None:
        watcher.join()
    response = client.request(
        "probe", job(root, "Good", "good.pt"), timeout=GOOD_TIMEOUT_S, memory_limit=MEMORY_BUDGET
    )
    result = response.get("result") or {}
    outcome.next_codes = {f["code"] for f in result.get("findings", [])}
    outcome.next_ok = "NP301" in outcome.next_codes and not any(
        c.startswith("NP9") for c in outcome.next_codes
    )
    outcome.restarted = client.pid != pid
    outcome.seen.setdefault("address_space_cap_after", address_space_cap(client.pid or 0))
    return outcome
