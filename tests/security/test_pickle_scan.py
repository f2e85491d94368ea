"""NP902 names what an opted-in load would import, found without unpickling anything.

The scan must name every global the hostile corpus's payloads use, inside bare pickles and inside
.pt/.pth/.ckpt zips, stay silent on ordinary checkpoints, and never resolve a global itself: every
unpickler raises the `pickle.find_class` audit event when it does, so a hook counts them.
"""

from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("picklescan")

from corpus import CORPUS, FullModel, Hostile, ShellPayload  # noqa: E402
from torch import nn  # noqa: E402

from nnprobe.probe.loading import refusal_message  # noqa: E402
from nnprobe.probe.pickle_scan import SCAN_LIMIT, Imports, would_import  # noqa: E402

PICKLES = [c for c in CORPUS if c.code == "NP902"]
resolved: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "pickle.find_class":
        resolved.append(f"{args[0]}.{args[1]}")


sys.addaudithook(_audit)


@pytest.mark.parametrize("case", PICKLES, ids=[c.name for c in PICKLES])
def test_names_every_import_without_unpickling(case: Hostile, tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL_code_ran"
    path = case.build(tmp_path, sentinel)
    resolved.clear()
    found = would_import(path)
    assert resolved == []
    assert found is not None and found.complete
    names = found.names
    assert set(case.imports) <= set(names), names
    assert not any(n.startswith("torch._utils._rebuild") for n in names)
    message = refusal_message(found)
    assert all(n in message for n in case.imports)
    assert not sentinel.exists()


def test_dangerous_globals_come_first(tmp_path: Path) -> None:
    path = tmp_path / "both.pt"
    torch.save({"model": FullModel(tmp_path / "s"), "hook": ShellPayload(tmp_path / "s")}, path)
    found = would_import(path)
    assert found is not None and found.names[0] == "posix.system", found
    assert f"{FullModel.__module__}.FullModel" in found.names


def _benign(folder: Path) -> list[Path]:
    model = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 8)).sum().backward()
    optimizer.step()
    state = model.state_dict()
    objects = {
        "state_dict.pt": state,
        "bundle.pth": {"model": state, "optimizer": optimizer.state_dict(), "epoch": 2},
        "lightning.ckpt": {
            "epoch": 2,
            "global_step": 40,
            "state_dict": {f"model.{k}": v for k, v in state.items()},
            "optimizer_states": [optimizer.state_dict()],
            "hyper_parameters": {"lr": 1e-3, "name": "tiny"},
        },
    }
    paths = []
    for name, obj in objects.items():
        torch.save(obj, folder / name)
        paths.append(folder / name)
    torch.save(state, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    return [*paths, folder / "legacy.pt"]


def test_ordinary_checkpoints_import_nothing_to_report(tmp_path: Path) -> None:
    for path in _benign(tmp_path):
        assert would_import(path) == Imports([]), path.name


def test_message_counts_what_it_does_not_list() -> None:
    message = refusal_message(Imports([f"evil.f{i}" for i in range(9)]))
    assert "evil.f5 and 3 more" in message and "evil.f6" not in message


def test_a_padded_pickle_is_scanned_only_so_far(tmp_path: Path) -> None:
    """picklescan holds every opcode in memory: a pickle padded with millions of cheap opcodes is
    read only up to SCAN_LIMIT, and the message says the list may be incomplete."""
    path = tmp_path / "padded.pt"
    payload = pickle.dumps(ShellPayload(tmp_path / "s"), protocol=2)
    path.write_bytes(payload[:2] + b"N0" * (SCAN_LIMIT // 2 + 8) + payload[2:])
    resolved.clear()
    started = time.perf_counter()
    found = would_import(path)
    elapsed = time.perf_counter() - started
    assert resolved == [] and found is not None and not found.complete
    assert "only the first 1 MiB" in refusal_message(found)
    assert elapsed < 20, elapsed
