"""Real files of every kind nnprobe loads, and the damaged copies the loading matrix is run on.

The good files come from real writers on a real model: a digits MLP trained here
(tests/digits_models.py) saved as a state_dict, as a Lightning-style bundle with its Adam state,
as safetensors, as ONNX and as TorchScript; and training logs written by the writers in
tests/log_runs.py (Lightning and Keras CSV, JSON lines, a TensorBoard event file). Each is damaged
the ways files get damaged: cut short at every tenth of its length (an interrupted copy or save),
replaced by random bytes of the same length, emptied, and given another kind's extension.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from digits_models import digits, trained
from log_runs import train, write_jsonl, write_keras_csv, write_lightning_csv, write_tensorboard

TRAINING_SCRIPT = """\
import torch
from torch import nn

model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.9)
for epoch in range(10):
    for x, y in loader:
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
torch.save(model.state_dict(), "digits.pt")
"""


@dataclass(frozen=True)
class Good:
    kind: str
    name: str  # file name; the damaged copies keep its suffix (and tfevents prefix)
    data: bytes

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix

    def variant_name(self, label: str) -> str:
        """A name that keeps what tells nnprobe the kind: the suffix, or the tfevents prefix."""
        if self.name.startswith("events.out.tfevents."):
            return f"events.out.tfevents.{self.kind}-{label}"
        return f"{self.kind}-{label}{self.suffix}"


def _saved(save: Callable[[Path], object], folder: Path, name: str) -> bytes:
    path = folder / name
    save(path)
    return path.read_bytes()


def good_files(folder: Path) -> list[Good]:
    """One good file of each kind, written by its real writer under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    model = trained(steps=60)
    state = model.state_dict()
    _, x, y = digits()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.nn.functional.cross_entropy(
        model(torch.from_numpy(x[:32])), torch.from_numpy(y[:32])
    )
    loss.backward()
    optimizer.step()
    bundle = {"state_dict": state, "optimizer_states": [optimizer.state_dict()], "epoch": 3}

    def safetensors(path: Path) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))

    def onnx(path: Path) -> None:
        sample = torch.from_numpy(x[:2])
        torch.onnx.export(
            model,
            (sample,),
            str(path),
            input_names=["input"],
            dynamo=False,
            dynamic_axes={"input": {0: "batch"}},
        )

    records = train("digits", epochs=6, lr=0.05, train_size=400)
    logs = folder / "logs"
    files = [
        Good("state-dict", "state_dict.pt", _saved(lambda p: torch.save(state, p), folder, "a.pt")),
        Good("bundle", "bundle.ckpt", _saved(lambda p: torch.save(bundle, p), folder, "b.ckpt")),
        Good("safetensors", "weights.safetensors", _saved(safetensors, folder, "c.safetensors")),
        Good("onnx", "model.onnx", _saved(onnx, folder, "d.onnx")),
        Good(
            "torchscript",
            "scripted.pt",
            _saved(lambda p: torch.jit.script(model).save(str(p)), folder, "e.pt"),
        ),
        Good(
            "lightning-csv",
            "metrics.csv",
            write_lightning_csv(records, logs / "metrics.csv").read_bytes(),
        ),
        Good(
            "keras-csv",
            "training.csv",
            write_keras_csv(records, logs / "training.csv").read_bytes(),
        ),
        Good("jsonl", "log.jsonl", write_jsonl(records, logs / "log.jsonl").read_bytes()),
        Good(
            "tfevents",
            "events.out.tfevents.good",
            write_tensorboard(records, logs / "tb").read_bytes(),
        ),
    ]
    return files


@dataclass(frozen=True)
class Variant:
    good: Good
    label: str  # "cut-30%", "random", "empty", "as-.onnx"
    name: str
    data: bytes


def damaged(good: Good, rng: random.Random) -> list[Variant]:
    """Cut at every tenth, random bytes of the same length, empty."""
    out = []
    for tenth in range(1, 10):
        label = f"cut-{tenth * 10}pct"
        out.append(
            Variant(
                good, label, good.variant_name(label), good.data[: len(good.data) * tenth // 10]
            )
        )
    out.append(Variant(good, "random", good.variant_name("random"), rng.randbytes(len(good.data))))
    out.append(Variant(good, "empty", good.variant_name("empty"), b""))
    return out


# A good file under another kind's name: what a mislabelled download or a rename looks like.
WRONG_EXTENSIONS = {
    "state-dict": ".onnx",
    "bundle": ".safetensors",
    "safetensors": ".pt",
    "onnx": ".pth",
    "torchscript": ".onnx",
    "lightning-csv": ".jsonl",
    "jsonl": ".csv",
    "tfevents": ".pt",
}


def misnamed(good: Good) -> Variant | None:
    suffix = WRONG_EXTENSIONS.get(good.kind)
    if suffix is None:
        return None
    return Variant(good, f"as-{suffix}", f"{good.kind}-misnamed{suffix}", good.data)


def variants(goods: list[Good], seed: int = 0) -> list[Variant]:
    rng = random.Random(seed)
    out = [v for g in goods for v in damaged(g, rng)]
    out += [v for g in goods if (v := misnamed(g)) is not None]
    return out
