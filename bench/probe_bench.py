"""Probe engine benchmark: the ONNX Runtime probe against eager PyTorch, side by side in one run.

For an MLP, a small CNN, a ResNet-18-shaped net (plain torch.nn), an LSTM and a small transformer
encoder, at batch 64, it measures (a) a plain eager forward, (b) the eager fallback probe (forward
hooks on every layer, statistics in numpy), (c) the ONNX Runtime probe (statistics reduced inside
the graph); (a), (b) and (c) are timed interleaved, so a load spike on a shared machine hits all
three alike. Then the one-off costs: export, session creation, a first inspection with an empty
cache, and a second checkpoint of the same architecture (cache hit, weights re-bound); the peak RSS
rise of a probe at 64, 256 and 1024 inputs (sub-batch 64), each in a fresh process, since in one
process the allocator's reuse of freed memory hides or invents growth; and the share of this
machine's measured matmul GFLOP/s the ONNX Runtime probe reaches. A second table compares ONNX
Runtime's graph optimisation levels. The load average is printed with the results, and the
issue's targets are checked against the numbers.

    python bench/probe_bench.py [--repeat 7] [--write bench/RESULTS-probe.md] [--quick]

Ratios are what to read; absolute times depend on the machine (printed in the header).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from nnprobe.probe import ProbeInputs, ProbeOptions, probe_module  # noqa: E402
from nnprobe.probe import runner as runner_mod  # noqa: E402
from nnprobe.probe.export import bind_weights, export_module  # noqa: E402
from nnprobe.probe.graph import build_graph  # noqa: E402
from nnprobe.probe.hooks import eager_probe  # noqa: E402
from nnprobe.probe.modules import module_kinds  # noqa: E402
from nnprobe.probe.runner import OPT_LEVELS, make_session, run_probe  # noqa: E402

BATCH = 64


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout ([2, 2, 2, 2] basic blocks, 64-512 channels), in plain nn."""

    def __init__(self, classes: int = 1000, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers = []
        cin = width
        for i, cout in enumerate([width, width * 2, width * 4, width * 8]):
            stride = 1 if i == 0 else 2
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Linear(64 * 8 * 8, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(64, 256, num_layers=2, batch_first=True)
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(64, 128)
        layer = nn.TransformerEncoderLayer(128, 4, 512, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.proj(x)).mean(dim=1))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)
    )


def models(quick: bool) -> list[tuple[str, Callable[[], nn.Module], tuple[int, ...]]]:
    if quick:
        return [
            ("MLP", lambda: nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)), (32,)),
            ("ResNet-18 shape (width 8)", lambda: ResNet18(10, width=8), (3, 32, 32)),
        ]
    return [
        ("MLP 784-512-512-10", mlp, (784,)),
        ("small CNN 3x32x32", SmallCNN, (3, 32, 32)),
        ("ResNet-18 shape 3x64x64", ResNet18, (3, 64, 64)),
        ("LSTM 2x256, 32 steps", LSTMNet, (32, 64)),
        ("transformer enc. 2x128, 32 tokens", Encoder, (32, 64)),
    ]


def count_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-adds x2 of the Linear, Conv and recurrent layers (attention products ignored)."""
    total = 0.0

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        nonlocal total
        out = output[0] if isinstance(output, tuple) else output
        if isinstance(module, nn.Linear):
            total += 2.0 * module.in_features * out.numel()
        elif isinstance(module, nn.Conv2d):
            per = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            total += 2.0 * per * out.numel()
        elif isinstance(module, nn.LSTM):
            steps, batch = x.shape[1], x.shape[0]
            h, i = module.hidden_size, module.input_size
            for layer in range(module.num_layers):
                width = i if layer == 0 else h
                total += 2.0 * 4 * h * (width + h) * steps * batch
        elif isinstance(module, nn.MultiheadAttention):
            tokens = x.shape[0] * x.shape[1]
            total += 2.0 * 4 * module.embed_dim * module.embed_dim * tokens

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def matmul_gflops() -> float:
    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(5))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(fn: Callable[[], object], repeat: int) -> float:
    fn()
    return statistics.median(_timed(fn) for _ in range(repeat))


def interleaved(fns: list[Callable[[], object]], repeat: int, settle: bool = False) -> list[float]:
    """Median time of each function, run in turn `repeat` times (after one warm-up each).

    `settle`: each timed call follows an untimed call of the same function, so no engine is
    timed while the previous one's threads still hold the CPUs: torch's OpenMP threads spin
    after a forward, and an ONNX Runtime probe timed right after eager hooks ran 1.27x slower
    on the LSTM (26.0 vs 20.5 ms on 2 CPUs; 20.8 vs 20.5 with OMP_WAIT_POLICY=PASSIVE)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            if settle:
                fn()
            times[i].append(_timed(fn))
    return [statistics.median(t) for t in times]


PEAK_COUNTS = (BATCH, 4 * BATCH, 16 * BATCH)


def peak_in_fresh_process(index: int, count: int, quick: bool) -> int | None:
    """The peak RSS rise of probing `count` inputs (sub-batch 64), in a new interpreter, after a
    warm-up probe of the same model (export, session, allocator)."""
    command = [sys.executable, __file__, "--peak-child", str(index), str(count)]
    if quick:
        command.append("--quick")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    value = int(done.stdout.strip().splitlines()[-1])
    return None if value < 0 else value


def peak_child(index: int, count: int, quick: bool) -> int:
    from nnprobe.probe.memory import PeakMemory

    _, factory, shape = models(quick)[index]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(count, *shape).numpy()
    with tempfile.TemporaryDirectory() as cache:
        options = ProbeOptions(cache_dir=Path(cache), sub_batch=BATCH)
        probe_module(model, x[:BATCH], display_path="m.pt", options=options)
        with PeakMemory() as memory:
            probe_module(model, x, display_path="m.pt", options=options)
    return memory.delta if memory.delta is not None and memory.exact else -1


@dataclass
class Pairs:
    """First inspections and second checkpoints of one architecture, measured in pairs (medians)."""

    first: float
    second: float
    ratio: float  # the median of the pairs' ratios
    export: float  # of the first: exporting, checking and caching the graph
    run: float  # of the second: the probe's forward and reductions (the floor of any checkpoint)
    session: float  # of the second: ONNX Runtime session creation with its weights

    @property
    def ceiling(self) -> float:
        """The ratio if a second checkpoint cost nothing but its probe run."""
        return self.first / self.run


class _Everything(frozenset[str]):
    def __contains__(self, item: object) -> bool:
        return True


def first_and_second(
    model: nn.Module, factory: Callable[[], nn.Module], probe: ProbeInputs, repeat: int
) -> tuple[Pairs, Pairs]:
    """A first inspection of the architecture and a second checkpoint of it, in pairs; as shipped
    and, interleaved with it, with a session created for every checkpoint (the engine before one
    session per convolution-free architecture: runner._BIND_AT_CREATION covering every op).

    Each pair starts from an empty export cache and an empty in-process architecture registry (a
    worker that has not seen this architecture); torch's exporter is already warm in this process,
    as in a worker that has exported other models, which is the first inspection's cheapest case
    and so the ratio's harshest. The second checkpoint has new weights (another random init)."""
    shipped = runner_mod._BIND_AT_CREATION
    samples: dict[bool, list[tuple[float, float, float, float, float]]] = {True: [], False: []}
    try:
        for _ in range(max(3, repeat)):
            for as_shipped in (True, False):
                runner_mod._BIND_AT_CREATION = shipped if as_shipped else _Everything()
                runner_mod._ARCHITECTURES.clear()  # forget the analysed graphs (a fresh worker)
                with tempfile.TemporaryDirectory() as cache:
                    options = ProbeOptions(cache_dir=Path(cache))
                    start = time.perf_counter()
                    first = probe_module(model, probe, display_path="a.pt", options=options)
                    t_first = time.perf_counter() - start
                    other = factory().eval()
                    start = time.perf_counter()
                    second = probe_module(other, probe, display_path="b.pt", options=options)
                    t_second = time.perf_counter() - start
                    assert not first.cache_hit and second.cache_hit
                samples[as_shipped].append(
                    (
                        t_first,
                        t_second,
                        first.timings["export"],
                        second.timings["run"],
                        second.timings["session"],
                    )
                )
    finally:
        runner_mod._BIND_AT_CREATION = shipped
        runner_mod._ARCHITECTURES.clear()

    def pairs(rows: list[tuple[float, float, float, float, float]]) -> Pairs:
        m = statistics.median
        columns = list(zip(*rows, strict=True))
        ratio = m(a / b for a, b, *_ in rows)
        return Pairs(m(columns[0]), m(columns[1]), ratio, *(m(c) for c in columns[2:]))

    return pairs(samples[True]), pairs(samples[False])


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def weights_as_inputs(bound: Any, graph: Any, weights: set[str], x: np.ndarray, repeat: int) -> str:
    """The road not taken for a later checkpoint: one session per architecture whose weights are
    graph inputs fed with each run (no session per checkpoint), against the session that binds
    them as initializers (constant folding, BatchNorm fused into Conv, prepacked NCHWc weights).
    Both run the reducing graph on the same feeds, interleaved; creation times are one each."""
    import onnx
    import onnxruntime as ort

    from nnprobe.probe.reductions import bounds_feed, plan_reductions
    from nnprobe.probe.runner import session_options
    from nnprobe.probe.stats import StatsSpec, resize_mean_image

    plan = plan_reductions(bound, graph)
    feeds: dict[str, Any] = {graph.input_name: x, **bounds_feed(plan, StatsSpec())}
    for name, (h, w) in plan.image_inputs.items():
        feeds[name] = resize_mean_image(x, h, w)[:, None]
    as_inputs = runner_mod.weights_as_inputs(plan.model, weights)
    fed = {t.name: onnx.numpy_helper.to_array(t) for t in plan.model.graph.initializer}
    fed = {k: v for k, v in fed.items() if k in weights}
    sessions, created = [], []
    for proto in (as_inputs, plan.model):
        start = time.perf_counter()
        sessions.append(
            ort.InferenceSession(
                proto.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
            )
        )
        created.append(time.perf_counter() - start)
    fed_run, bound_run = interleaved(
        [lambda: sessions[0].run(None, {**feeds, **fed}), lambda: sessions[1].run(None, feeds)],
        repeat,
    )
    return f"{fmt_ms(fed_run)} ({fmt_ms(created[0])}) vs {fmt_ms(bound_run)} ({fmt_ms(created[1])})"


def bench_model(
    index: int, quick: bool, repeat: int, peak: float
) -> tuple[dict[str, str], dict[str, str]]:
    name, factory, shape = models(quick)[index]
    torch.manual_seed(0)
    model = factory().eval()
    x = torch.randn(BATCH, *shape)
    probe = ProbeInputs.from_arrays(x.numpy())

    def eager() -> None:
        with torch.no_grad():
            model(x)

    start = time.perf_counter()
    exported = export_module(model, x[:3], use_cache=False)
    t_export = time.perf_counter() - start
    bound = bind_weights(exported, model)
    graph = build_graph(bound, exported.module_names, module_kinds(model))
    levels: dict[str, str] = {"model": name}
    timings: dict[str, float] = {}
    for level in OPT_LEVELS:
        start = time.perf_counter()
        session = make_session(bound, graph, level)
        created = time.perf_counter() - start
        timings[level] = median(lambda s=session: run_probe(s, graph, probe), repeat)
        levels[level] = f"{fmt_ms(timings[level])} ({fmt_ms(created)} to create)"
    fastest = min(timings, key=lambda k: timings[k])
    levels["fastest"] = fastest
    levels["weights as inputs, all: ms (create ms) vs bound"] = weights_as_inputs(
        bound, graph, set(exported.bound_names), x.numpy(), repeat
    )
    start = time.perf_counter()
    session = make_session(bound, graph)
    t_session = time.perf_counter() - start
    t_eager, t_hooks, t_ort = interleaved(
        [
            eager,
            lambda: eager_probe(model, probe, sub_batch=BATCH),
            lambda: run_probe(session, graph, probe),
        ],
        repeat,
        settle=True,
    )

    pairs, before = first_and_second(model, factory, probe, repeat)
    flops = count_flops(model, x)
    reached = flops / t_ort / 1e9
    row = {
        "model": name,
        "values": str(len(graph.values)),
        "(a) eager fwd ms": fmt_ms(t_eager),
        "(b) eager hooks probe ms": fmt_ms(t_hooks),
        "(c) ORT probe ms": fmt_ms(t_ort),
        "b/c": f"{t_hooks / t_ort:.2f}x",
        "export s": f"{t_export:.2f}",
        "session s": f"{t_session:.3f}",
        "1st inspect s (export)": f"{pairs.first:.3f} ({pairs.export:.3f})",
        "2nd ckpt s (session / run)": (
            f"{pairs.second:.3f} ({pairs.session:.3f} / {pairs.run:.3f})"
        ),
        "1st/2nd": f"{pairs.ratio:.1f}x",
        "1st/2nd, a session per ckpt": f"{before.ratio:.1f}x ({before.second:.3f} s 2nd)",
        "1st/run": f"{pairs.ceiling:.1f}x",
        "peak RSS MiB (64 / 256 / 1024 in)": " / ".join(
            _mib(peak_in_fresh_process(index, count, quick)) for count in PEAK_COUNTS
        ),
        "GFLOP/s (% of matmul)": f"{reached:.1f} ({100 * reached / peak:.0f}%)",
    }
    return row, levels


def _mib(value: int | None) -> str:
    return "?" if value is None else f"{value / 2**20:.0f}"


def targets(rows: list[dict[str, str]]) -> str:
    """The issue's targets, each marked met or not met from this run's numbers."""

    def ratio(row: dict[str, str], key: str) -> float:
        return float(row[key].rstrip("x"))

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    lines = ["Targets (from the issue), checked against this run:", ""]
    for row in rows:
        conv = "CNN" in row["model"] or "ResNet" in row["model"]
        want = 1.5 if conv else 1.0
        got = ratio(row, "b/c")
        lines.append(
            f"- {row['model']}: ORT probe {got:.2f}x faster than eager hooks (target >= {want}x): "
            f"{mark(got >= want)}; second checkpoint {ratio(row, '1st/2nd'):.1f}x faster than the "
            f"first (target >= 5x): {mark(ratio(row, '1st/2nd') >= 5)}"
        )
    bounded = []
    for row in rows:
        peaks = [p.strip() for p in row["peak RSS MiB (64 / 256 / 1024 in)"].split("/")]
        if "?" in peaks:
            continue
        values = [float(p) for p in peaks]
        # Bounded: 16x the inputs may cost the allocator's plateau, not 16x the memory.
        bounded.append((row["model"], values[-1] <= max(values[0], values[1]) * 1.5 + 16))
    if bounded:
        unbounded = [m for m, ok in bounded if not ok]
        lines.append(
            "- peak memory bounded by the sub-batch (1024 inputs within 1.5x + 16 MiB of the "
            f"larger of 64 and 256): {mark(not unbounded)}"
            + (f" (not for {', '.join(unbounded)})" if unbounded else "")
        )
    return "\n".join(lines)


def table(rows: list[dict[str, str]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(row[k] for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--write", type=Path, help="also write the tables to this Markdown file")
    parser.add_argument("--quick", action="store_true", help="tiny models, one repetition")
    parser.add_argument(
        "--only", help="measure only the models whose name contains one of these (comma-separated)"
    )
    parser.add_argument("--peak-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_child:
        print(peak_child(args.peak_child[0], args.peak_child[1], args.quick))
        return 0
    load_before = os.getloadavg()
    repeat = 1 if args.quick else args.repeat
    peak = matmul_gflops()
    import onnxruntime

    header = (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime "
        f"{onnxruntime.__version__}, numpy {np.__version__}; fp32 matmul peak measured "
        f"{peak:.1f} GFLOP/s (1024x1024 torch.mm). Batch {BATCH}, sub-batch {BATCH}, median of "
        f"{repeat}; times include computing the statistics of every tracked value."
    )
    rows, level_rows = [], []
    loads = []
    wanted = [w.strip() for w in args.only.split(",")] if args.only else None
    for index, (name, _, _) in enumerate(models(args.quick)):
        if wanted and not any(w in name for w in wanted):
            continue
        row, levels = bench_model(index, args.quick, repeat, peak)
        rows.append(row)
        level_rows.append(levels)
        loads.append(os.getloadavg()[0])
        print(f"measured {name} (load average {loads[-1]:.1f})", file=sys.stderr)
    load = (
        f"Load average (1 min) {load_before[0]:.1f} at the start, "
        + ", ".join(f"{v:.1f}" for v in loads)
        + f" after each model, on {os.cpu_count()} CPUs: other work shared the machine, so read "
        "the ratios (timed interleaved), not the absolute times."
    )
    text = (
        f"{header}\n\n{load}\n\n{table(rows)}\n\n{targets(rows)}\n\nONNX Runtime probe time (ms) "
        f"by graph optimisation level, statistics reduced in the graph:\n\n{table(level_rows)}\n"
    )
    print(text)
    if args.write:
        args.write.write_text(
            "# Probe engine benchmark\n\nMeasured by `python bench/probe_bench.py --write "
            f"bench/RESULTS-probe.md`.\n\n{text}",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
