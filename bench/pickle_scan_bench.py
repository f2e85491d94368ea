"""Which pickle scanner names what an opted-in load would import: picklescan, fickling, modelscan
and nnprobe's former hand-written opcode walker, side by side on the same files in one run.

NP902's message says which globals unpickling a refused file would import. The scanner that finds
them must never unpickle anything itself, must name every dangerous global in the hostile corpus
(tests/security/corpus.py: bare pickles, pickles inside .pt/.pth/.ckpt zips, a model posing as a
state_dict, a shell command in a Lightning-style .ckpt), must stay silent on ordinary checkpoints
(state_dicts, optimizer bundles, TorchScript, Lightning .ckpt, the legacy non-zip format), and must
be quick on a ~50 MB state_dict. Unpickling is detected with the `pickle.find_class` audit event,
which every unpickler built on pickle.Unpickler raises when it resolves a global.

    .venv/bin/python bench/pickle_scan_bench.py          # prints the table (Markdown)

Scanners that are not installed are listed as such; `pip install picklescan fickling modelscan`.
"""

from __future__ import annotations

import io
import pickletools
import statistics
import sys
import tempfile
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "security"))

from corpus import CORPUS, Hostile  # noqa: E402

# What torch's weights-only unpickler accepts: globals a scanner may list without it counting as a
# false positive (a scanner that flags them cries wolf on every checkpoint).
TORCH_SAFE = ("torch.", "collections.OrderedDict", "_codecs.encode", "builtins.set")
PICKLE_MEMBERS = (".pkl", ".pickle")
find_class_events = 0


def _audit(event: str, args: tuple[object, ...]) -> None:
    global find_class_events
    if event == "pickle.find_class":
        find_class_events += 1


sys.addaudithook(_audit)


def _norm(name: str) -> str:
    return name.replace("__builtin__.", "builtins.")


@dataclass
class Verdict:
    flagged: bool
    names: set[str] = field(default_factory=set)  # non-torch globals the scanner named
    error: str = ""


def scan_stopgap(path: Path) -> Verdict:
    """What NP902 named before picklescan: torch's weights-only error text for zips, and for bare
    pickles the first non-torch global found by the hand-written walker below. One name at most."""
    from nnprobe.probe import loading

    if zipfile.is_zipfile(path):
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            match = loading._GLOBAL.search(str(exc))
            return Verdict(True, {_norm(match.group(1))} if match else set())
        return Verdict(False)
    found = _stopgap_walk(path)
    return Verdict(found is not None, {_norm(found)} if found else set())


def _stopgap_walk(path: Path) -> str | None:
    """nnprobe's former opcode walker (loading._foreign_global), kept here as the baseline."""
    strings: list[str] = []
    memo: dict[int, str] = {}
    pushed: str | None = None
    try:
        with path.open("rb") as handle:
            for opcode, arg, _ in pickletools.genops(handle):
                if opcode.name == "MEMOIZE" or opcode.name.endswith("PUT"):
                    key = len(memo) if opcode.name == "MEMOIZE" else arg
                    memo[int(key or 0)] = pushed or ""
                    continue
                pushed = arg if isinstance(arg, str) and "UNICODE" in opcode.name else None
                if opcode.name.endswith("GET") and memo.get(int(arg or 0)):
                    pushed = memo[int(arg or 0)]
                if pushed is not None:
                    strings.append(pushed)
                if opcode.name in ("GLOBAL", "INST") and isinstance(arg, str):
                    name = arg.replace(" ", ".")
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    name = ".".join(strings[-2:])
                else:
                    continue
                if not name.startswith(("torch.", "collections.OrderedDict", "_codecs.encode")):
                    return name
    except (ValueError, EOFError, OSError):
        return None
    return None


def scan_picklescan(path: Path) -> Verdict:
    from picklescan.scanner import SafetyLevel, scan_file_path

    result = scan_file_path(str(path))
    names = {
        _norm(f"{g.module}.{g.name}") for g in result.globals if g.safety != SafetyLevel.Innocuous
    }
    return Verdict(result.issues_count > 0 or result.suspicious_count > 0, names, "")


def _fickling_pickles(path: Path) -> list[bytes]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return [archive.read(n) for n in archive.namelist() if n.endswith(PICKLE_MEMBERS)]
    return [path.read_bytes()]


def scan_fickling(path: Path) -> Verdict:
    import ast

    from fickling.analysis import Severity, check_safety
    from fickling.fickle import StackedPickle

    flagged, names = False, set()
    for data in _fickling_pickles(path):
        for pickled in StackedPickle.load(io.BytesIO(data), fail_on_decode_error=False):
            flagged |= check_safety(pickled).severity > Severity.LIKELY_SAFE
            for node in pickled.properties.imports:
                if isinstance(node, ast.ImportFrom):
                    names |= {_norm(f"{node.module}.{a.name}") for a in node.names}
    return Verdict(flagged, {n for n in names if not n.startswith(TORCH_SAFE)})


def scan_modelscan(path: Path) -> Verdict:
    from modelscan.modelscan import ModelScan

    scanner = ModelScan()
    scanner.scan(path)
    names = {_norm(f"{i.details.module}.{i.details.operator}") for i in scanner.issues.all_issues}
    return Verdict(bool(names), names, "; ".join(str(e) for e in scanner.errors)[:60])


def scan_nnprobe(path: Path) -> Verdict:
    """What NP902 now uses: picklescan's globals less torch's weights-only allowlist."""
    from nnprobe.probe.pickle_scan import would_import

    found = would_import(path)
    names = found.names if found else []
    return Verdict(bool(names), set(names))


SCANNERS: dict[str, tuple[str | None, Callable[[Path], Verdict]]] = {
    "stopgap (hand-written)": (None, scan_stopgap),
    "picklescan": ("picklescan", scan_picklescan),
    "fickling": ("fickling", scan_fickling),
    "modelscan": ("modelscan", scan_modelscan),
    "nnprobe now (picklescan + torch allowlist)": ("picklescan", scan_nnprobe),
}


class Tiny(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def benign(folder: Path) -> dict[str, Path]:
    model = Tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 16)).sum().backward()
    optimizer.step()
    files = {
        "state_dict.pt": model.state_dict(),
        "bundle-with-adam.pth": {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": 3,
        },
        "lightning.ckpt": {
            "epoch": 3,
            "global_step": 120,
            "pytorch-lightning_version": "2.4.0",
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "optimizer_states": [optimizer.state_dict()],
            "lr_schedulers": [],
            "hyper_parameters": {"lr": 1e-3, "hidden": 16, "name": "tiny"},
            "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": None}},
        },
    }
    out = {}
    for name, obj in files.items():
        torch.save(obj, folder / name)
        out[name] = folder / name
    torch.save(model.state_dict(), folder / "legacy.pt", _use_new_zipfile_serialization=False)
    out["legacy-format.pt"] = folder / "legacy.pt"
    torch.jit.script(model).save(str(folder / "scripted.pt"))
    out["torchscript.pt"] = folder / "scripted.pt"
    return out


def big(folder: Path) -> dict[str, Path]:
    """~50 MB of float32 weights, in the zip format and in the legacy pickle format."""
    state = {f"layers.{i}.weight": torch.randn(1024, 1024) for i in range(12)}
    torch.save(state, folder / "big.pt")
    torch.save(state, folder / "big_legacy.pt", _use_new_zipfile_serialization=False)
    return {"zip": folder / "big.pt", "legacy": folder / "big_legacy.pt"}


def install_weight(dist: str | None) -> str:
    if dist is None:
        return "stdlib only"
    try:
        d = metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return "not installed"
    size = sum(f.size or 0 for f in d.files or [])
    runtime = [r for r in d.requires or [] if "extra" not in r]
    deps = [r.split(";")[0].split(" ")[0].split(">")[0] for r in runtime]
    return f"{d.version}, {size // 1024} KiB, deps: {', '.join(deps) or 'none'}"


def timed(scan: Callable[[Path], Verdict], path: Path, runs: int = 3) -> tuple[float, float]:
    """Median seconds over `runs` and peak traced Python memory (MiB) of one scan."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        scan(path)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    scan(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def expected_names(case: Hostile) -> set[str]:
    return {_norm(n) for n in case.imports}


def main() -> None:
    global find_class_events
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sentinel = folder / "SENTINEL_code_ran"
        hostile = [(c, c.build(folder, sentinel)) for c in CORPUS if c.code == "NP902"]
        ok = benign(folder)
        large = big(folder)
        sizes = {k: p.stat().st_size / 2**20 for k, p in large.items()}
        rows = []
        for label, (dist, scan) in SCANNERS.items():
            weight = install_weight(dist)
            if weight == "not installed":
                rows.append((label, weight, "", "", "", "", "", "", ""))
                continue
            find_class_events = 0
            detected, named, missed = 0, 0, []
            for case, path in hostile:
                try:
                    verdict = scan(path)
                except Exception as exc:
                    verdict = Verdict(False, error=type(exc).__name__)
                detected += verdict.flagged
                if expected_names(case) <= verdict.names:
                    named += 1
                else:
                    missed.append(f"{case.name}: {sorted(verdict.names) or verdict.error or '-'}")
            false_pos = []
            for name, path in ok.items():
                try:
                    verdict = scan(path)
                except Exception as exc:
                    verdict = Verdict(True, error=type(exc).__name__)
                if verdict.flagged or verdict.names:
                    false_pos.append(f"{name}: {sorted(verdict.names) or verdict.error}")
            unpickled = find_class_events
            t_zip, m_zip = timed(scan, large["zip"])
            t_legacy, m_legacy = timed(scan, large["legacy"])
            rows.append(
                (
                    label,
                    weight,
                    f"{detected}/{len(hostile)}",
                    f"{named}/{len(hostile)}",
                    f"{len(false_pos)}/{len(ok)}",
                    f"{t_zip * 1000:.1f} ms, {m_zip:.1f} MiB",
                    f"{t_legacy * 1000:.1f} ms, {m_legacy:.1f} MiB",
                    str(unpickled),
                    "; ".join(missed + [f"FP {f}" for f in false_pos]) or "-",
                )
            )
        sentinel_made = sentinel.exists()
    print(
        f"hostile pickles: {len(hostile)} ({', '.join(c.name for c, _ in hostile)}); "
        f"benign: {len(ok)} ({', '.join(ok)}); large state_dict: {sizes['zip']:.1f} MiB zip, "
        f"{sizes['legacy']:.1f} MiB legacy; "
        f"python {sys.version.split()[0]}, torch {torch.__version__}"
    )
    print()
    head = (
        "scanner",
        "version, install size, runtime deps",
        "flagged",
        "every import named",
        "false positives",
        "50 MB zip: time, peak mem",
        "50 MB legacy: time, peak mem",
        "find_class events (unpickling)",
        "misses / false positives",
    )
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print(f"sentinel created by any scanner: {sentinel_made}")


if __name__ == "__main__":
    main()
