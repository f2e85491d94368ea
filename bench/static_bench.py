"""How fast the static path is, measured against the cheapest thing it could possibly do.

Inspects a corpus (every .py under tests/fixtures and examples/, plus a generated ~300-line and a
generated 5,000-line training script) with nnprobe's engine, and times `ast.parse` of the same
files in the same run, interleaved, so the ratio does not depend on the machine. Both sides read
the file from disk. Each measurement is repeated and the median reported. This is a benchmark, not
a test: it prints figures and never fails on them.

    python bench/static_bench.py [--repeat 7] [--keep DIR] [--baseline SRC [--rounds 3]]

`--baseline SRC` (another checkout's src folder, e.g. from `git worktree add /tmp/old HEAD~5`)
runs this script on that code and on this checkout in fresh processes, alternately, `--rounds`
times, and prints the ratios side by side: a change's effect measured on the same machine.
"""

from __future__ import annotations

import argparse
import ast
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nnprobe.core.config import Config
from nnprobe.core.engine import handled_suffixes, inspect_target
from nnprobe.core.files import Target
from nnprobe.core.registry import all_rules

ROOT = Path(__file__).resolve().parents[1]
CORPUS_DIRS = ("tests/fixtures", "examples")

HEADER = '''"""Generated for nnprobe's benchmark: many models, optimizers and training loops."""

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

CONFIG = {"lr": 1e-3, "weight_decay": 1e-4, "momentum": 0.9, "epochs": 12, "hidden": 128}
BATCH_SIZE = 64


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--checkpoint", default="model.pt")
    return parser.parse_args()


def make_loader(n, features, classes, seed):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, features, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=BATCH_SIZE, shuffle=True)
'''

MLP = """

class MLP{i}(nn.Module):
    def __init__(self, features={f}, hidden={h}, classes=10, p=0.{d}):
        super().__init__()
        self.fc1 = nn.Linear(features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc3 = nn.Linear(hidden, classes)
        self.dropout = nn.Dropout(p)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)

    def forward(self, x):
        x = self.dropout(F.relu(self.fc1(x)))
        x = F.relu(self.norm(self.fc2(x)))
        return self.fc3(x)
"""

CNN = """

class ConvNet{i}(nn.Module):
    def __init__(self, channels={c}, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, channels * 2, kernel_size=3, padding=1),
            nn.BatchNorm2d(channels * 2),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(channels * 2, classes)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(torch.flatten(x, 1))
"""

RNN = """

class SequenceModel{i}(nn.Module):
    def __init__(self, vocab=1000, embed={h}, hidden={h}, layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True, dropout=0.2)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens, state=None):
        output, state = self.rnn(self.embedding(tokens), state)
        return self.decoder(output), state
"""

RESIDUAL = """

class ResidualBlock{i}(nn.Module):
    def __init__(self, width={h}):
        super().__init__()
        self.linear1 = nn.Linear(width, width)
        self.linear2 = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(width)

    def forward(self, x):
        residual = x
        out = F.relu(self.norm(self.linear1(x)))
        return F.relu(self.linear2(out) + residual)
"""

OPTIMIZERS = (
    'torch.optim.Adam(model.parameters(), lr=CONFIG["lr"], weight_decay=CONFIG["weight_decay"])',
    'torch.optim.SGD(model.parameters(), lr=0.{s}, momentum=CONFIG["momentum"])',
    "torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.01)",
    "torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True)",
)

SCHEDULERS = (
    "torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.5)",
    "torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.3, patience=2)",
    "torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)",
)

LOOP = """

def train_{i}(args, model, loader, val_loader):
    optimizer = {optimizer}
    scheduler = {scheduler}
    criterion = nn.CrossEntropyLoss()
    best = math.inf
    for epoch in range(args.epochs):
        model.train()
        running = 0.0
        for step, (inputs, targets) in enumerate(loader):
            optimizer.zero_grad(set_to_none=True)
            outputs = model(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            running += loss.item()
            if step % 50 == 0:
                print(f"model {i} epoch {{epoch}} step {{step}} loss {{loss.item():.4f}}")
        val_loss = evaluate_{i}(model, val_loader, criterion)
        {scheduler_step}
        if val_loss < best:
            best = val_loss
            torch.save(model.state_dict(), args.checkpoint)
    model.load_state_dict(torch.load(args.checkpoint, weights_only=True))
    return best


def evaluate_{i}(model, loader, criterion):
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for inputs, targets in loader:
            total += criterion(model(inputs), targets).item() * len(targets)
            count += len(targets)
    return total / max(count, 1)
"""

FOOTER = """

def main():
    args = parse_args()
    loader = make_loader(512, 64, 10, seed=0)
    val_loader = make_loader(128, 64, 10, seed=1)
    results = {{}}
{calls}
    print(results)


if __name__ == "__main__":
    main()
"""


def generate_script(target_lines: int) -> str:
    """A syntactically valid training script of about target_lines lines, built from varied
    model/optimizer/loop blocks so every rule has real work to do on it."""
    blocks = [HEADER]
    calls: list[str] = []
    lines = HEADER.count("\n") + FOOTER.count("\n")
    i = 0
    while lines + len(calls) < target_lines:
        kind = (MLP, CNN, RNN, RESIDUAL)[i % 4]
        model = kind.format(i=i, f=32 + i % 5 * 16, h=64 + i % 3 * 32, d=1 + i % 4, c=8 + i % 3 * 8)
        scheduler = SCHEDULERS[i % len(SCHEDULERS)]
        loop = LOOP.format(
            i=i,
            optimizer=OPTIMIZERS[i % len(OPTIMIZERS)].format(s=1 + i % 9 // 8),
            scheduler=scheduler,
            scheduler_step=(
                "scheduler.step(val_loss)" if "Plateau" in scheduler else "scheduler.step()"
            ),
        )
        blocks += [model, loop]
        if kind is MLP:
            calls.append(f"    results[{i}] = train_{i}(args, MLP{i}(64), loader, val_loader)")
        lines += model.count("\n") + loop.count("\n")
        i += 1
    blocks.append(FOOTER.format(calls="\n".join(calls) or "    pass"))
    source = "".join(blocks)
    ast.parse(source)
    return source


@dataclass
class Measured:
    parse_runs: list[float]  # whole-corpus seconds per repeat
    nnprobe_runs: list[float]
    per_file: dict[Path, list[float]]  # nnprobe seconds per repeat, per file
    parse_per_file: dict[Path, list[float]]
    analysed: set[Path]
    findings: int


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(files: list[Path], repeat: int) -> Measured:
    config = Config.default(ROOT)
    targets = {path: Target(path, path.as_posix(), explicit=True) for path in files}

    def parse(path: Path) -> None:
        ast.parse(path.read_bytes(), filename=str(path))

    # Warm-up: imports, rule registry, file cache.
    analysed: set[Path] = set()
    findings = 0
    for path in files:
        parse(path)
        result = inspect_target(targets[path], config)
        findings += len(result.findings)
        if result.analysed:
            analysed.add(path)

    m = Measured([], [], {p: [] for p in files}, {p: [] for p in files}, analysed, findings)
    for _ in range(repeat):
        gc.collect()
        total = 0.0
        for path in files:
            elapsed = _time(lambda path=path: parse(path))
            m.parse_per_file[path].append(elapsed)
            total += elapsed
        m.parse_runs.append(total)
        gc.collect()
        total = 0.0
        for path in files:
            elapsed = _time(lambda path=path: inspect_target(targets[path], config))
            m.per_file[path].append(elapsed)
            total += elapsed
        m.nnprobe_runs.append(total)
    return m


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(q) - 1]


def corpus(generated_dir: Path) -> tuple[list[Path], Path, Path]:
    files = []
    for name in CORPUS_DIRS:
        directory = ROOT / name
        if directory.is_dir():
            files += sorted(p for p in directory.rglob("*.py") if p.is_file())
    small = generated_dir / "generated_300_lines.py"
    large = generated_dir / "generated_5000_lines.py"
    small.write_text(generate_script(300), encoding="utf-8")
    large.write_text(generate_script(5000), encoding="utf-8")
    return files + [small, large], small, large


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def report(m: Measured, files: list[Path], small: Path, large: Path, repeat: int) -> None:
    ms = 1000.0
    nn_run = statistics.median(m.nnprobe_runs)
    parse_run = statistics.median(m.parse_runs)
    per_file = {p: statistics.median(v) for p, v in m.per_file.items()}
    analysed = [p for p in files if p in m.analysed]
    analysed_times = [per_file[p] for p in analysed] or list(per_file.values())
    lines = sum(line_count(p) for p in files)
    rules = [r for r in all_rules() if r.code.startswith("NP1")]

    def ratio(path: Path) -> float:
        return per_file[path] / statistics.median(m.parse_per_file[path])

    print(f"python {sys.version.split()[0]}, {len(rules)} static (NP1xx) rules registered")
    if ".py" not in handled_suffixes():
        print("warning: no inspector handles .py files; the nnprobe figures measure nothing")
    print(
        f"corpus: {len(files)} files ({len(analysed)} analysed as training scripts), "
        f"{lines} lines, {m.findings} findings; median of {repeat} runs\n"
    )
    rows = [
        ("files/s (whole corpus)", f"{len(files) / nn_run:,.0f}"),
        ("lines/s (whole corpus)", f"{lines / nn_run:,.0f}"),
        ("per-file check time p50", f"{percentile(analysed_times, 50) * ms:.2f} ms"),
        ("per-file check time p95", f"{percentile(analysed_times, 95) * ms:.2f} ms"),
        (
            f"{line_count(small)}-line script",
            f"{per_file[small] * ms:.2f} ms ({ratio(small):.1f}x ast.parse)",
        ),
        (
            f"{line_count(large)}-line script",
            f"{per_file[large] * ms:.2f} ms ({ratio(large):.1f}x ast.parse)",
        ),
        (
            "whole run: nnprobe / ast.parse",
            f"{nn_run * ms:.1f} ms / {parse_run * ms:.1f} ms = {nn_run / parse_run:.2f}x",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("\nMarkdown:\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


_RATIO = re.compile(
    r"^  (\d+-line script|whole run)\b.*?([\d.]+)x(?: ast\.parse\))?$", re.MULTILINE
)


def compare(baseline: Path, rounds: int, repeat: int) -> None:
    """Ratios to ast.parse of `baseline`'s code and ours, each round one fresh run of each."""
    runs: dict[str, dict[str, list[str]]] = {"baseline": {}, "this checkout": {}}
    for _ in range(rounds):
        for label, src in (("baseline", baseline.resolve()), ("this checkout", ROOT / "src")):
            env = {**os.environ, "PYTHONPATH": str(src)}
            command = [sys.executable, __file__, "--repeat", str(repeat)]
            output = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            for measure, ratio in _RATIO.findall(output.stdout):
                runs[label].setdefault(measure, []).append(f"{ratio}x")
    print(f"ratio to ast.parse, {rounds} alternating runs each (median of {repeat} inside each)")
    print(f"baseline: {baseline}\n")
    print("| measure | baseline | this checkout |\n|---|---|---|")
    for measure in runs["this checkout"]:
        cells = [", ".join(runs[label].get(measure, [])) for label in ("baseline", "this checkout")]
        print(f"| {measure} | {cells[0]} | {cells[1]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per measurement (median)")
    parser.add_argument("--keep", type=Path, help="write the generated scripts here and keep them")
    parser.add_argument("--baseline", type=Path, metavar="SRC", help="compare with this src folder")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs with --baseline")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.baseline is not None:
        compare(args.baseline, args.rounds, args.repeat)
        return

    with tempfile.TemporaryDirectory(prefix="nnprobe-bench-") as tmp:
        generated_dir = args.keep or Path(tmp)
        generated_dir.mkdir(parents=True, exist_ok=True)
        files, small, large = corpus(generated_dir)
        measured = measure(files, args.repeat)
        report(measured, files, small, large, args.repeat)


if __name__ == "__main__":
    main()
