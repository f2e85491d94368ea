"""Finding the model a state_dict belongs to, statically, and importing a training script's
definitions without running its training. No torch needed except where a model is built."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nnprobe.core.config import Config, ConfigError, parse_config
from nnprobe.probe.factory import discover, path_pattern, resolve_factory, script_context
from nnprobe.probe.workspace_import import WorkspaceImportError, import_definitions, load_object

NET = """
import os
import torch
from torch import nn

HIDDEN = 24


class Net(nn.Module):
    def __init__(self, hidden=16, classes=10):
        super().__init__()
        self.fc1 = nn.Linear(64, hidden)
        self.fc2 = nn.Linear(hidden, classes)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_unguarded_top_level_code_is_not_run(tmp_path: Path) -> None:
    """The sentinel test: definitions are importable, and nothing the training top level does
    (file writes, loops, calls, the __main__ block) happens."""
    script = write(
        tmp_path / "train.py",
        """
        import os
        from pathlib import Path

        HERE = os.path.dirname(os.path.abspath(__file__))
        STEPS = 3 * 4
        CLASSES = ("cat", "dog")
        N = max(len(CLASSES), int(os.environ.get("NNPROBE_N", "1")))
        try:
            import numpy as np
        except ImportError:
            np = None


        def sentinel(name):
            Path(HERE, name).write_text("ran")


        class Net:
            width = STEPS


        sentinel("top-level-call")
        with open(os.path.join(HERE, "top-level-with"), "w") as handle:
            handle.write("ran")
        for epoch in range(2):
            sentinel(f"loop-{epoch}")
        data = sentinel("assignment-by-call")
        size = len(sentinel("call-inside-a-safe-call") or "")
        if __name__ == "__main__":
            sentinel("main-block")
        """,
    )
    module = import_definitions(script)
    assert module.Net.width == 12 and callable(module.sentinel) and module.N == 2
    assert module.__file__ == str(script.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.py"]
    assert str(tmp_path) not in sys.path
    assert load_object(script, "Net.width") == 12
    with pytest.raises(WorkspaceImportError, match="defines no 'Missing'"):
        load_object(script, "Missing")


def test_import_errors_are_messages(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.py", "def f(:\n")
    with pytest.raises(WorkspaceImportError, match="syntax error at line 1"):
        import_definitions(bad)
    raising = write(tmp_path / "raising.py", "import no_such_module_here\n")
    with pytest.raises(WorkspaceImportError, match="ModuleNotFoundError"):
        import_definitions(raising)


@pytest.mark.parametrize(
    ("dest", "pattern"),
    [
        ('f"runs/ckpt_{epoch}.pt"', "runs/ckpt_*.pt"),
        ('os.path.join(RUNS, f"ckpt_{epoch:03d}.pt")', "runs/ckpt_*.pt"),
        ('Path(RUNS) / f"epoch{epoch}" / "model.pt"', "runs/epoch*/model.pt"),
        ('RUNS + "/last.pt"', "runs/last.pt"),
        ('"runs/ckpt_{}.pt".format(epoch)', "runs/ckpt_*.pt"),
        ("name", None),
    ],
)
def test_save_path_patterns(tmp_path: Path, dest: str, pattern: str | None) -> None:
    script = write(
        tmp_path / "t.py",
        f"""
        import os
        import torch
        from pathlib import Path
        RUNS = "runs"
        for epoch in range(3):
            torch.save(model.state_dict(), {dest})
        """,
    )
    ctx = script_context(script)
    assert ctx is not None
    call = next(c for c, _ in ctx.calls_to("torch.save"))
    assert path_pattern(ctx, call.args[1]) == pattern


def test_discovery_follows_the_save_path_and_static_arguments(tmp_path: Path) -> None:
    write(
        tmp_path / "train.py",
        NET
        + """
model = Net(HIDDEN, classes=int(os.environ.get("N", 10)))
for epoch in range(3):
    torch.save({"model": model.state_dict(), "epoch": epoch}, f"runs/ckpt_{epoch}.pt")
""",
    )
    write(tmp_path / "other.py", NET + '\nm = Net()\ntorch.save(m.state_dict(), "other.pt")\n')
    resolution = discover(tmp_path / "runs" / "ckpt_2.pt", tmp_path)
    spec = resolution.spec
    assert spec is not None, resolution.reason
    assert (spec.script.name, spec.name, spec.args) == ("train.py", "Net", (24,))
    assert spec.kwargs == () and spec.notes and "classes: not static" in spec.notes[0]
    assert "runs/ckpt_*.pt" in spec.origin
    assert resolution.model is not None
    assert [op.path for op in resolution.model.weight_layers] == ["fc1", "fc2"]
    # Two scripts save state_dicts and neither names this file: no guess.
    lost = discover(tmp_path / "elsewhere" / "x.pt", tmp_path)
    assert lost.spec is None and "several scripts" in lost.reason


def test_discovery_falls_back_to_the_only_saving_script(tmp_path: Path) -> None:
    write(
        tmp_path / "train.py",
        NET + "\ndef make():\n    return Net(hidden=HIDDEN)\n\n"
        "net = make()\ntorch.save(net.state_dict(), out_path)\n",
    )
    resolution = discover(tmp_path / "weights" / "final.pt", tmp_path)
    assert resolution.spec is not None, resolution.reason
    assert resolution.spec.name == "make" and "the only script" in resolution.spec.origin


def test_unresolvable_models_say_why_and_how_to_configure(tmp_path: Path) -> None:
    write(
        tmp_path / "train.py",
        NET + "\nimport sys\nmodel = Net(classes=int(sys.argv[1]))\n"
        "class Deep(nn.Module):\n    def __init__(self, depth):\n        super().__init__()\n"
        'deep = Deep(int(sys.argv[2]))\ntorch.save(deep.state_dict(), "runs/deep.pt")\n',
    )
    resolution = discover(tmp_path / "runs" / "deep.pt", tmp_path)
    assert resolution.spec is None
    assert "depth" in resolution.reason and "--model train.py:Net" in resolution.reason
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = discover(empty / "a.pt", empty)
    assert nothing.spec is None and "no training script" in nothing.reason


def test_configured_models_come_first(tmp_path: Path) -> None:
    write(tmp_path / "train.py", NET)
    config = parse_config({"models": {"runs/*.pt": "train.py:Net"}}, root=tmp_path)
    resolution = resolve_factory(tmp_path / "runs" / "a.pt", config)
    assert resolution.spec is not None and resolution.spec.name == "Net"
    assert "tool.nnprobe.models" in resolution.spec.origin
    other = resolve_factory(tmp_path / "b.pt", config)
    assert other.spec is None


def test_probe_config_keys_are_validated() -> None:
    config = parse_config(
        {"input-shape": [3, 32, 32], "probe-batch": 16, "probe": "probe.npz"}, root=Path("/r")
    )
    assert config.input_shape == (3, 32, 32) and config.probe_batch == 16
    assert config.probe == "probe.npz" and config.probe_base == Path("/r")
    assert parse_config({"input-shape": "1x8x8"}).input_shape == (1, 8, 8)
    for table, message in (
        ({"models": {"*.pt": "train.py"}}, "must look like 'file.py:Name'"),
        ({"models": {"*.pt": 3}}, "must be a string"),
        ({"models": "train.py:Net"}, "must be a table"),
        ({"input-shape": [3, 0]}, "positive integers"),
        ({"probe-batch": 0}, "positive integer"),
        ({"probe": ""}, "data file"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_config(table)
    assert Config.default().run_probes is False and Config.default().trusted is False


def test_front_door_modules_import_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import nnprobe.cli, nnprobe.inspectors, nnprobe.probe.runtime, nnprobe.probe.factory\n"
        "import nnprobe.probe.source_map, nnprobe.probe.worker_client, nnprobe.probe.progress\n"
        "import nnprobe.probe.workspace_import, nnprobe.probe.train_settings\n"
        "print(json.dumps([m for m in ('torch', 'onnx', 'onnxruntime', 'numpy')"
        " if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


class _Stream:
    def __init__(self, tty: bool) -> None:
        import threading

        self.tty = tty
        self.text = ""
        self.written = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.text += text
        self.written.set()
        return len(text)

    def flush(self) -> None:
        pass


def test_progress_only_on_a_tty_and_erased_at_the_end() -> None:
    from nnprobe.probe.progress import Progress

    quiet = _Stream(tty=False)
    with Progress("probing a.pt", stream=quiet, delay=0.0):
        assert not quiet.written.wait(0.05)
    assert quiet.text == ""
    tty = _Stream(tty=True)
    with Progress("probing a.pt", stream=tty, delay=0.0):
        assert tty.written.wait(10)
    assert tty.text.startswith("\rnnprobe: probing a.pt")
    assert tty.text.endswith("\r") and tty.text.rstrip("\r").endswith(" ")


def test_weights_load_strictly_and_wrapper_prefixes_come_back(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from nnprobe.probe.factory import FactoryError, FactorySpec, build_model, load_weights
    from nnprobe.probe.loading import load_checkpoint

    script = write(
        tmp_path / "train.py",
        NET + "\n\nclass Wrapper(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.model = Net(hidden=HIDDEN)\n",
    )
    torch.manual_seed(0)
    wrapper = build_model(FactorySpec(script, "Wrapper"))
    torch.save({"state_dict": wrapper.state_dict()}, tmp_path / "lightning.ckpt")
    checkpoint = load_checkpoint(tmp_path / "lightning.ckpt")
    assert checkpoint.prefix == "model."
    fresh = build_model(FactorySpec(script, "Wrapper"))
    load_weights(fresh, checkpoint, FactorySpec(script, "Wrapper"))
    assert torch.equal(fresh.model.fc1.weight, wrapper.model.fc1.weight)
    inner = build_model(FactorySpec(script, "Net", kwargs=(("hidden", 24),)))
    load_weights(inner, checkpoint, FactorySpec(script, "Net"))
    narrow = FactorySpec(script, "Net", origin="from --model")
    with pytest.raises(FactoryError, match=r"shapes differ for fc1\.weight, fc1\.bias"):
        load_weights(build_model(narrow), checkpoint, narrow)
    with pytest.raises(FactoryError, match="returned 'int', not an nn.Module"):
        build_model(FactorySpec(script, None, expression="HIDDEN"))


def test_source_map_finds_layer_lines_and_copies_runtime_findings(tmp_path: Path) -> None:
    from nnprobe.core.finding import FILE_START, Evidence
    from nnprobe.core.registry import get_rule
    from nnprobe.probe.source_map import SourceMap

    script = write(
        tmp_path / "model.py",
        """
        import torch
        from torch import nn


        class CNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(1, 8, 3),
                    nn.ReLU(),
                )
                self.head = nn.Linear(8, 10)

            def forward(self, x):
                return self.head(torch.relu(self.features(x).mean((2, 3))))
        """,
    )
    ctx = script_context(script)
    assert ctx is not None
    smap = SourceMap.build(ctx, ctx.models.for_class(ctx.classes["CNN"]), script, "model.py")
    assert smap.range_for("features.1").start.line == 11  # type: ignore[union-attr]
    assert smap.range_for("features.0.weight").start.line == 10  # type: ignore[union-attr]
    assert smap.range_for("tail") is None and smap.range_for("0") is None
    smap.prefix = "features."  # names the loader stripped come back
    assert smap.range_for("0").start.line == 10  # type: ignore[union-attr]
    assert smap.activations == {"features.0": "relu"}
    rule = get_rule("NP301")
    assert rule is not None
    functional = rule().finding("runs/a.pt", FILE_START, message="dead", module=None)
    functional.data["layer"] = "head"
    static = get_rule("NP101")().finding("runs/a.pt", FILE_START, message="s")  # type: ignore[misc]
    copies = smap.copies([functional, static], "runs/a.pt")
    assert [(c.path, c.range.start.line, c.message) for c in copies] == [
        ("model.py", 13, "a.pt: dead")
    ]
    assert copies[0].evidence is Evidence.ACTIVATIONS and "checkpoint" not in functional.data
