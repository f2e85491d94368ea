"""Trusted mode does what the README says: a training script's definitions are imported, and
nothing else of it, or of the workspace modules it imports, runs.

Every case of corpus_trusted_import.py is a script with one hostile statement beside a real
model. Run as Python runs it, each payload creates its sentinel (the control: so each test can
fail). Built by nnprobe (factory discovery, then the definitions-only import), no sentinel
appears, the model beside the payload is built, loads its weights and runs, and where discovery
itself would have called the hostile thing (`model = subprocess.Popen([...])`) the answer is
NP905 saying why. Then the same through `nnprobe inspect` and its real worker, and the contract's
edges: what real code still gets (packages, dataclasses, ABCs, properties, optional imports), the
skipped statement named when a factory cannot be built, fresh modules after an edit, compiled
workspace modules refused, and configured factories (the user's explicit choice) called as named.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from corpus_trusted_import import CASES, NO_PLAIN_PAYLOAD  # noqa: E402

from nnprobe.core.config import Config, parse_config  # noqa: E402
from nnprobe.probe.factory import (  # noqa: E402
    FactoryError,
    FactorySpec,
    build_model,
    load_weights,
    resolve_factory,
)
from nnprobe.probe.loading import load_checkpoint  # noqa: E402
from nnprobe.probe.workspace_import import (  # noqa: E402
    WorkspaceImportError,
    definitions,
    load_object,
)

BY_NAME = {case.name: case for case in CASES}


def wait_absent(path: Path, grace: float = 0.5) -> bool:
    """True when `path` does not appear within `grace` seconds (a payload run through Popen or
    os.system writes it from another process, a moment later)."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if path.exists():
            return False
        time.sleep(0.02)
    return not path.exists()


def wait_present(path: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


CONTROL = """
import json, os, runpy, sys, traceback
import torch

cases = json.loads(sys.argv[1])
call = torch.nn.Module.__call__
before = set(sys.modules)
for script in cases:
    folder = os.path.dirname(script)
    package = os.path.exists(os.path.join(folder, "__init__.py"))
    root = os.path.dirname(folder) if package else folder
    os.chdir(folder)
    sys.path.insert(0, root)
    try:
        if package:
            runpy.run_module(os.path.basename(folder) + ".train", run_name="__main__")
        else:
            runpy.run_path(script, run_name="__main__")
    except BaseException:
        pass
    finally:
        sys.path.remove(root)
        torch.nn.Module.__call__ = call
        for name in set(sys.modules) - before:
            del sys.modules[name]
"""


def test_plain_python_runs_every_payload(tmp_path: Path) -> None:
    """The control: each script run as `python train.py` (or `python -m project.train`) does run
    its payload, so the tests below can fail."""
    scripts, sentinels = [], {}
    for case in CASES:
        if case.name in NO_PLAIN_PAYLOAD:
            continue
        sentinel = tmp_path / f"{case.name}.ran"
        path = case.build(tmp_path / case.name, sentinel)
        scripts.append(str(path.parent / "train.py"))
        sentinels[case.name] = sentinel
    subprocess.run(
        [sys.executable, "-c", CONTROL, json.dumps(scripts)],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    missing = [name for name, sentinel in sentinels.items() if not wait_present(sentinel)]
    assert missing == []


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_trusted_build_runs_no_payload(tmp_path: Path, case: object) -> None:
    """Discovery plus the definitions-only import, as the worker runs them: the sentinel never
    appears; the legitimate model is built, takes its weights and runs a forward pass; a
    discovered hostile factory is NP905."""
    from corpus import Hostile

    assert isinstance(case, Hostile)
    sentinel = tmp_path / "RAN"
    folder = tmp_path / "ws"
    path = case.build(folder, sentinel)
    resolution = resolve_factory(path, Config.default(root=folder))
    assert resolution.spec is not None, resolution.reason
    spec = FactorySpec.from_dict(json.loads(json.dumps(resolution.spec.to_dict())))
    call = torch.nn.Module.__call__
    try:
        if case.code == "NP905":
            with pytest.raises(FactoryError) as refused:
                build_model(spec)
            assert refused.value.code == "NP905" and case.says in refused.value.message
        else:
            model = build_model(spec)
            load_weights(model, load_checkpoint(path), spec)
            assert model(torch.ones(3, 4)).shape == (3, 2)
    finally:
        patched = torch.nn.Module.__call__ is not call
        torch.nn.Module.__call__ = call
    assert not patched, "the script's monkeypatch of nn.Module ran"
    assert wait_absent(sentinel), f"{case.name}: the payload ran"


CLI_CASES = [
    "trusted-class-body",
    "trusted-discovered-popen",
    "trusted-discovered-os-system",
    "trusted-sibling-imported-in-init",
    "trusted-package-init",
    "trusted-monkeypatch",
]


def test_cli_inspect_builds_the_models_and_runs_no_payload(tmp_path: Path) -> None:
    """`nnprobe inspect` (trusted, as run by the user) over a workspace of cases, probing in its
    real worker: every legitimate model is probed (its ReLU layer measured), every discovered
    hostile factory is NP905, and no sentinel appears."""
    ws = tmp_path / "ws"
    sentinels = {}
    for name in CLI_CASES:
        sentinels[name] = tmp_path / f"{name}.ran"
        BY_NAME[name].build(ws / name, sentinels[name])
    (ws / "pyproject.toml").write_text("[tool.nnprobe]\nignore = ['NP4']\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("NNPROBE_UNTRUSTED", "NNPROBE_WORKER")}
    env["NNPROBE_CACHE_DIR"] = str(tmp_path / "cache")
    done = subprocess.run(
        [sys.executable, "-m", "nnprobe", "inspect", ".", "--output-format", "json"]
        + ["--select", "NP3,NP9"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    findings = json.loads(done.stdout)["findings"]
    by_path: dict[str, list[str]] = {}
    for finding in findings:
        by_path.setdefault(finding["path"], []).append(f"{finding['code']}: {finding['message']}")
    for name in CLI_CASES:
        case = BY_NAME[name]
        home = next(p.parent for p in (ws / name).rglob("net.pt"))
        net = home.relative_to(ws) / "net.pt"
        assert not any(m.startswith(("NP905", "NP903")) for m in by_path.get(str(net), [])), (
            name,
            by_path.get(str(net)),
        )
        if case.code == "NP905":
            evil = str(home.relative_to(ws) / "evil.pt")
            said = " ".join(by_path.get(evil, []))
            assert "NP905" in said and case.says in said, (name, said)
    ran = [name for name, sentinel in sentinels.items() if not wait_absent(sentinel, 0.2)]
    assert ran == []


# ---------------------------------------------------------------------- what real code still gets

PACKAGE_INIT = """
from .layers import Block

__all__ = ["Block"]
"""
LAYERS = '''
"""Layers shared by the models."""
import abc
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

import torch
from torch import nn

try:
    import no_such_accelerator as accel
except ImportError:
    accel = None

WIDTH = 4
SCALE = 2 ** 3
T = TypeVar("T", bound=nn.Module)


@dataclass
class BlockConfig:
    width: int = WIDTH
    names: list = field(default_factory=list)


class Base(nn.Module, metaclass=abc.ABCMeta):
    kind = "base"

    @abc.abstractmethod
    def forward(self, x):
        raise NotImplementedError


class Block(Base):
    def __init__(self, config: BlockConfig | None = None, scale=SCALE):
        super().__init__()
        self.config = config or BlockConfig()
        self.fc = nn.Linear(self.config.width, scale)
        self._gain = 1.0

    @property
    def gain(self):
        return self._gain

    @gain.setter
    def gain(self, value):
        self._gain = value

    @staticmethod
    def double(x):
        return 2 * x

    @torch.no_grad()
    def peek(self, x):
        return self.fc(x)

    def forward(self, x):
        return torch.relu(self.fc(x)) * self.gain


class Scaled(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2
'''
MODEL = """
import sys
from pathlib import Path

import torch.nn as nn

from .layers import SCALE, Block, BlockConfig, Scaled

HERE = Path(__file__).parent
HIDDEN = SCALE * 2 if sys.version_info >= (3, 8) else 0
ACTIVATION = nn.ReLU
DEFAULTS = {"hidden": HIDDEN, "names": ("a", "b")}
pick = lambda key, table=DEFAULTS: table[key]


def head(width, classes=2):
    return nn.Linear(width, classes)


class Net(nn.Module):
    class Meta:
        tag = "inner"

    def __init__(self, hidden=HIDDEN, act=ACTIVATION):
        super().__init__()
        self.block = Block(BlockConfig(width=4))
        self.act = act()
        self.out = head(SCALE, classes=pick("hidden") // 8)

    def forward(self, x):
        return self.out(self.act(Scaled.apply(self.block(x))))


if __name__ == "__main__":
    import torch

    torch.save(Net().state_dict(), "runs/net.pt")
"""


def test_real_code_keeps_working(tmp_path: Path) -> None:
    """A model in a package, built from its relative imports, a dataclass config with a
    default_factory, an ABC base (metaclass=ABCMeta), properties, static methods, a no_grad
    method, an autograd Function, an optional import, module constants as defaults, a nested
    class, a lambda and a version check: all defined, nothing skipped that the model needs."""
    package = tmp_path / "project" / "models"
    package.mkdir(parents=True)
    (tmp_path / "project" / "__init__.py").write_text("", encoding="utf-8")
    for name, text in (("__init__.py", PACKAGE_INIT), ("layers.py", LAYERS), ("net.py", MODEL)):
        (package / name).write_text(textwrap.dedent(text), encoding="utf-8")
    defs = definitions(package / "net.py")
    assert defs.module.__name__ == "project.models.net"
    model = defs.call(defs.lookup("Net"))
    assert model(torch.ones(2, 4)).shape == (2, 2)
    assert defs.module.Net.Meta.tag == "inner"
    assert package == defs.module.HERE
    block = model.block
    block.gain = 3.0
    assert (
        block.gain == 3.0 and block.double(2) == 4 and block.peek(torch.ones(1, 4)).shape == (1, 8)
    )
    layers = sys.modules["project.models.layers"]
    assert layers.accel is None and layers.BlockConfig().names == []
    assert defs.skipped == [], [s.describe() for s in defs.skipped]
    # The checkpoint the package's __main__ would save is discovered and its model built.
    (package / "runs").mkdir()
    torch.save(model.state_dict(), package / "runs" / "net.pt")
    spec = resolve_factory(package / "runs" / "net.pt", Config.default(root=tmp_path)).spec
    assert spec is not None and spec.discovered
    load_weights(build_model(spec), load_checkpoint(package / "runs" / "net.pt"), spec)


def test_a_skipped_statement_is_named_when_the_model_needs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """NP905 says which statement was not run and why, when the constructor needs its name; the
    skipped kinds are logged for each module."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn


            def pick_width():
                return 4


            WIDTH = pick_width()


            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(WIDTH, 2)


            for epoch in range(3):
                pass
            """
        ),
        encoding="utf-8",
    )
    with (
        caplog.at_level(logging.INFO, logger="nnprobe.probe.definitions"),
        pytest.raises(FactoryError) as failed,
    ):
        build_model(FactorySpec(script, "Net"))
    message = failed.value.message
    assert "NameError: name 'WIDTH' is not defined" in message
    assert "train.py:10 `WIDTH = pick_width()` (calls pick_width(), defined in the workspace)" in (
        message
    )
    assert "was not run" in message
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "train.py: definitions-only import skipped" in logged and "loop" in logged


def test_workspace_modules_are_fresh_after_an_edit(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("WIDTH = 4\n", encoding="utf-8")
    script = tmp_path / "train.py"
    script.write_text("from helpers import WIDTH\n", encoding="utf-8")
    assert load_object(script, "WIDTH") == 4
    (tmp_path / "helpers.py").write_text("WIDTH = 6\n", encoding="utf-8")
    assert load_object(script, "WIDTH") == 6
    assert str(tmp_path) not in sys.path


def test_compiled_workspace_modules_are_refused(tmp_path: Path) -> None:
    suffix = __import__("importlib.machinery").machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / f"fast{suffix}").write_bytes(b"\x7fELF not really")
    script = tmp_path / "train.py"
    script.write_text("import fast\n", encoding="utf-8")
    with pytest.raises(WorkspaceImportError, match="compiled code, which a definitions-only"):
        definitions(script)


def test_configured_factories_are_called_as_named(tmp_path: Path) -> None:
    """A factory the user names may be a function (or anything callable the script binds);
    only discovered ones are limited to the workspace's nn.Module classes."""
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent(
            """
            from torch import nn


            def make():
                return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
            """
        ),
        encoding="utf-8",
    )
    config = parse_config({"models": {"*.pt": "train.py:make"}}, root=tmp_path)
    resolution = resolve_factory(tmp_path / "w.pt", config)
    assert resolution.spec is not None and not resolution.spec.discovered
    assert isinstance(build_model(resolution.spec), torch.nn.Sequential)
    discovered = FactorySpec(script, "make", discovered=True)
    with pytest.raises(FactoryError, match="could train.*--model train.py:make"):
        build_model(discovered)


def test_a_script_in_a_package_folder_imports_its_siblings_both_ways(tmp_path: Path) -> None:
    """`scripts/train.py` beside `scripts/__init__.py`: `from models import ...` (as `python
    scripts/train.py` runs it) and `from .models import ...` (as `python -m scripts.train`)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "__init__.py").write_text("", encoding="utf-8")
    (scripts / "models.py").write_text("WIDTH = 4\n", encoding="utf-8")
    (scripts / "train.py").write_text(
        "from models import WIDTH\nfrom .models import WIDTH as SAME\n", encoding="utf-8"
    )
    module = definitions(scripts / "train.py").module
    assert (module.WIDTH, module.SAME) == (4, 4)


def test_the_model_and_its_probe_callable_share_workspace_modules(tmp_path: Path) -> None:
    """Within a job the model's classes stay importable by name (the export cache keys on
    their source) while the probe callable is imported; an edit makes new ones."""
    import inspect

    from nnprobe.probe.workspace_import import call_object

    (tmp_path / "layers.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Linear):\n    pass\n", encoding="utf-8"
    )
    script = tmp_path / "train.py"
    script.write_text(
        "import torch\nfrom layers import Net\n\n\ndef probe_batch():\n"
        "    return torch.ones(2, 4)\n",
        encoding="utf-8",
    )
    net = load_object(script, "Net")
    assert call_object(script, "probe_batch").shape == (2, 4)
    assert inspect.getsource(net).startswith("class Net(nn.Linear)")
    assert load_object(script, "Net") is net
    (tmp_path / "layers.py").write_text(
        "from torch import nn\n\n\nclass Net(nn.Linear):\n    width = 1\n", encoding="utf-8"
    )
    assert load_object(script, "Net").width == 1


SKIPS = {
    "WIDTH = compute()": "call",
    "@register\ndef f():\n    pass": "decorator",
    "class M(metaclass=Meta):\n    pass": "metaclass",
    "class K(Base, flag=True):\n    pass": "class keyword",
    "class S(Base[int]):\n    pass": "base class",
    "def g(x=compute()):\n    pass": "default argument",
    "try:\n    import os\nexcept (compute() or OSError):\n    pass": "try",
    "for i in range(3):\n    pass": "loop",
    "with open(__file__):\n    pass": "with",
    "if compute():\n    pass": "if",
    "obj.attr = 1": "assignment",
    "__builtins__ = {}": "assignment",
    "def __getattr__(name):\n    return name": "module hook",
    "compute()": "call",
}
PRELUDE = """
from typing import TYPE_CHECKING


def compute():
    return 1


def register(f):
    return f


class Meta(type):
    pass


class Base:
    pass


if TYPE_CHECKING:
    import not_installed_anywhere
else:
    KEPT = 1
"""


def test_skipped_statements_say_what_they_are(tmp_path: Path) -> None:
    """Each kind of statement a definitions-only import does not run is recorded with its
    line, the names it would bind and why; the definitions around them are all there."""
    text, lines = PRELUDE, {}
    for snippet in SKIPS:
        # A decorated def's line is its `def` line, after the decorator's.
        lines[snippet] = text.count("\n") + 2 + snippet.startswith("@")
        text += "\n" + snippet + "\n"
    script = tmp_path / "train.py"
    script.write_text(text, encoding="utf-8")
    defs = definitions(script)
    by_line = {s.line: s.kind for s in defs.skipped if not s.owner}
    assert {snippet: by_line.get(line) for snippet, line in lines.items()} == SKIPS
    assert defs.module.KEPT == 1 and callable(defs.module.compute)
    assert not hasattr(defs.module, "WIDTH") and not hasattr(defs.module, "f")
    width = next(s for s in defs.skipped if "WIDTH" in s.binds)
    assert width.why == "calls compute(), defined in the workspace" and width.file == "train.py"
