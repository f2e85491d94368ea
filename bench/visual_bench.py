"""Picture benchmark: projections (PCA, UMAP, t-SNE) by size, UMAP's cold start in a fresh process
with and without a warm numba cache, occlusion through ONNX Runtime vs eager PyTorch, and the HTML
report. Ratios are measured side by side in one run; absolute times depend on the machine.

    python bench/visual_bench.py [--sizes 1000,5000,20000] [--tsne-max 5000] [--write FILE]
    python bench/visual_bench.py --quick       # a smoke pass on tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))


def blobs(n: int, dims: int = 512, classes: int = 10, seed: int = 0) -> tuple[Any, Any]:
    """Points of `dims` dimensions around `classes` centres (what a trained layer looks like)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dims)) * 2.0
    labels = rng.integers(0, classes, n)
    return (centres[labels] + rng.standard_normal((n, dims))).astype(np.float32), labels


def child(method: str, n: int) -> None:
    """In a fresh process: the first call (import + compile + fit) and a second call."""
    t0 = time.perf_counter()
    from nnprobe.visuals.embedding import project

    x, _ = blobs(n)
    t1 = time.perf_counter()
    project(x, method)
    t2 = time.perf_counter()
    project(x, method)
    t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t0, "first": t2 - t1, "second": t3 - t2}))


def fresh(method: str, n: int, cache: Path | None) -> dict[str, float]:
    env = dict(os.environ)
    if cache is not None:
        env["NUMBA_CACHE_DIR"] = str(cache)
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, str(n)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def projections(sizes: list[int], tsne_max: int, rows: list[str]) -> None:
    from nnprobe.visuals.embedding import project, quality, warm_umap

    warm_umap(background=False)
    rows += [
        "| points (512-d) | PCA s | UMAP s (warm process) | UMAP trust / kNN-2D | "
        "t-SNE s | t-SNE trust / kNN-2D | PCA trust / kNN-2D |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        x, y = blobs(n)
        cells = [f"{n:,}"]
        metrics: dict[str, str] = {}
        for method in ("pca", "umap", "tsne"):
            if method == "tsne" and n > tsne_max:
                cells.append("skipped")
                metrics[method] = "-"
                continue
            start = time.perf_counter()
            points = project(x, method)
            cells.append(f"{time.perf_counter() - start:.2f}")
            q = quality(x, points, y)
            metrics[method] = f"{q['trustworthiness']:.3f} / {q['knn2d']:.3f}"
        rows.append(
            f"| {cells[0]} | {cells[1]} | {cells[2]} | {metrics['umap']} | {cells[3]} | "
            f"{metrics['tsne']} | {metrics['pca']} |"
        )


def umap_settings(n: int, repeats: int, rows: list[str]) -> None:
    """The shipped UMAP settings against the previous ones and against each change alone, timed
    interleaved in this warm process (medians), on 512-d blobs and on 512-d features of the
    digits and their shifts (tests/digits_models.py); the digits pictures of the previous and
    the shipped settings go to test-output/ to be looked at."""
    import numpy as np
    import umap

    from nnprobe.visuals import render
    from nnprobe.visuals.embedding import principal_components, project, quality, umap_epochs
    from nnprobe.visuals.jobs import subtitle

    def before(x: Any) -> Any:  # the settings until this change
        reducer = umap.UMAP(n_components=2, n_epochs=200, low_memory=True, init="spectral")
        return reducer.fit_transform(x)

    def shipped_but(**changes: Any) -> Any:
        def fit(x: Any) -> Any:
            data = principal_components(x, 50, "float32")
            settings: dict[str, Any] = dict(
                n_components=2,
                n_epochs=umap_epochs(len(x)),
                low_memory=True,
                init=data[:, :2].astype(np.float64),
                random_state=0,
                n_jobs=1,
            )
            settings.update(changes)
            if settings["n_jobs"] != 1:
                settings["random_state"] = None
            return umap.UMAP(**settings).fit_transform(data)

        return fit

    variants = {
        "before: 512-d, spectral init, 200 epochs, all cores": before,
        f"shipped: 50 PCA dims, PCA init, {umap_epochs(n)} epochs, 1 thread, seed": lambda x: (
            project(x, "umap")
        ),
        "shipped but 200 epochs": shipped_but(n_epochs=200),
        "shipped but spectral init": shipped_but(init="spectral"),
        "shipped but all cores (no seed)": shipped_but(n_jobs=-1),
        "PCA": lambda x: project(x, "pca"),
    }
    from digits_models import hidden_features

    datasets = {"blobs": blobs(n), "digits": hidden_features(n)}
    warm_up, _ = blobs(max(n, 4296))  # both neighbour searches, each variant's numba code
    for fit in variants.values():
        fit(warm_up)
    times: dict[tuple[str, str], list[float]] = {}
    scores: dict[tuple[str, str], dict[str, float]] = {}
    pictures: dict[str, Any] = {}
    for _ in range(repeats):
        for label, fit in variants.items():
            for name, (x, y) in datasets.items():
                start = time.perf_counter()
                points = fit(x)
                times.setdefault((label, name), []).append(time.perf_counter() - start)
                scores[(label, name)] = quality(x, points, y)
                if name == "digits" and label.split(":")[0] in ("before", "shipped"):
                    pictures[label.split(":")[0]] = (points, y, scores[(label, name)])
    rows += ["", f"UMAP settings at {n:,} points of 512-d, warm process, median of {repeats}:", ""]
    rows += [
        "| settings | blobs s | blobs trust / kNN-2D | digits s | digits trust / kNN-2D |",
        "|---|---|---|---|---|",
    ]
    for label in variants:
        cells = [label]
        for name in datasets:
            q = scores[(label, name)]
            cells += [
                f"{statistics.median(times[(label, name)]):.2f}",
                f"{q['trustworthiness']:.4f} / {q['knn2d']:.3f}",
            ]
        rows.append("| " + " | ".join(cells) + " |")
    out = ROOT / "test-output"
    out.mkdir(exist_ok=True)
    for which, (points, y, q) in pictures.items():
        meta = {"points": len(points), "colour": "digit", **q}
        title = f"{n:,} digits, 512-d MLP hidden layer (UMAP, {which} settings)"
        png = render.scatter(points, list(y), title, subtitle(meta))
        (out / f"umap-digits-{n}-{which}.png").write_bytes(png)


def cold_starts(sizes: list[int], rows: list[str]) -> None:
    rows += ["", "UMAP in a fresh process (import + numba compile + fit, then a second fit):", ""]
    rows += [
        "| points | numba cache | import s | first call s | second call s |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            cache = Path(tmp) / f"cache{n}"
            cache.mkdir()
            for label in ("empty", "warm"):
                r = fresh("umap", n, cache)
                rows.append(
                    f"| {n:,} | {label} | {r['import']:.1f} | {r['first']:.1f} | "
                    f"{r['second']:.1f} |"
                )
        r = fresh("pca", sizes[0], None)
        rows.append(
            f"| {sizes[0]:,} | PCA, for comparison | {r['import']:.1f} | {r['first']:.2f} | "
            f"{r['second']:.2f} |"
        )


def occlusion(rows: list[str], sizes: tuple[int, ...], repeats: int) -> None:
    import numpy as np
    import torch
    from torch import nn

    from nnprobe.probe.export import bind_weights, export_module
    from nnprobe.probe.graph import build_graph
    from nnprobe.probe.inputs import ProbeInputs
    from nnprobe.visuals.model_run import ModelRun, whole_session
    from nnprobe.visuals.occlusion import default_patch, occluded_copies, occlusion_map

    rows += ["", "Occlusion map of one input (all occluded copies batched):", ""]
    rows += [
        "| input | copies | ORT s | eager PyTorch s | eager/ORT |",
        "|---|---|---|---|---|",
    ]
    for size in sizes:
        torch.manual_seed(0)
        channels = 1 if size <= 32 else 3
        stride = 1 if size <= 32 else 2
        net = nn.Sequential(
            nn.Conv2d(channels, 32, 3, stride=stride, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=stride, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, stride=stride, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 10),
        ).eval()
        x = np.random.default_rng(0).random((8, channels, size, size), dtype=np.float32)
        exported = export_module(net, torch.from_numpy(x[:3]), use_cache=False)
        bound = bind_weights(exported, net)
        graph = build_graph(bound, exported.module_names)
        run = ModelRun(graph, whole_session(bound, graph), bound, ProbeInputs.from_arrays(x))
        patch, step = default_patch(size, size)
        ort_times, eager_times = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            result = occlusion_map(run, 0)
            ort_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            copies, _ = occluded_copies(x[0], x.mean(axis=(0, 2, 3)), patch, step)
            batch = np.concatenate([x[:1], copies])
            with torch.no_grad():
                for i in range(0, len(batch), 256):
                    torch.softmax(net(torch.from_numpy(batch[i : i + 256])), dim=1)
            eager_times.append(time.perf_counter() - start)
        o, e = statistics.median(ort_times), statistics.median(eager_times)
        rows.append(f"| {size}x{size} | {result.copies} | {o:.3f} | {e:.3f} | {e / o:.2f}x |")


def report_time(rows: list[str]) -> None:
    import contextlib

    from digits_cnn import fresh as fresh_cnn
    from digits_cnn import write_workspace

    from nnprobe.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_workspace(root, fresh_cnn())
        cwd = os.getcwd()
        os.chdir(root)
        try:
            start = time.perf_counter()
            argv = ["report", "cnn.pt", "--model", "model.py:DigitsCNN", "--probe", "probe.npz"]
            with contextlib.redirect_stdout(sys.stderr):
                code = main([*argv, "--no-probe", "-o", "report.html"])
            seconds = time.perf_counter() - start
            size = (root / "report.html").stat().st_size
        finally:
            os.chdir(cwd)
    rows += [
        "",
        f"`nnprobe report` on a digits CNN checkpoint (1,797 probe inputs, 5 pictures, "
        f"PCA preview): {seconds:.1f} s, {size / 1024:.0f} KiB, exit {code}.",
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, metavar=("METHOD", "N"))
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--tsne-max", type=int, default=5000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--write", metavar="FILE")
    parser.add_argument(
        "--umap-only", action="store_true", help="only the UMAP settings table (5k points)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    sizes = [300] if args.quick else [int(s) for s in args.sizes.split(",")]
    import onnxruntime
    import torch

    rows = [
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start; torch {torch.__version__}, onnxruntime "
        f"{onnxruntime.__version__}, umap-learn {__import__('umap').__version__}.",
        "",
    ]
    if args.umap_only:
        umap_settings(5000, 3, rows)
        print("\n".join(rows))
        return 0
    projections(sizes, args.tsne_max, rows)
    umap_settings(sizes[-1] if args.quick else min(5000, sizes[-1]), 1 if args.quick else 3, rows)
    cold_starts(sizes[:1] if args.quick else sizes[:2], rows)
    occlusion(rows, (28,) if args.quick else (28, 224), 1 if args.quick else 3)
    report_time(rows)
    text = "\n".join(rows) + "\n"
    print(text)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
