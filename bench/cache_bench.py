"""What checking the export cache costs a warm checkpoint: the probe benchmark's models, each with
its graph entry in a fresh cache, timed interleaved: a whole second-checkpoint probe (cache hit),
the entry's read and checks together, and the checks alone (the SHA-256 over the entry, and the
graph matched against the module), and the cache key (computed on every probe).

    python bench/cache_bench.py [--repeat 9] [--quick]

Prints one row per model; the share of the warm probe spent verifying is what to read.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from probe_bench import BATCH, interleaved, models  # noqa: E402

from nnprobe.probe import ProbeInputs, ProbeOptions, probe_module  # noqa: E402
from nnprobe.probe import export as export_mod  # noqa: E402
from nnprobe.probe.disk_cache import unpack  # noqa: E402


def bench(name: str, factory: object, shape: tuple[int, ...], repeat: int) -> str:
    torch.manual_seed(0)
    model = factory().eval()  # type: ignore[operator]
    x = torch.randn(BATCH, *shape)
    probe = ProbeInputs.from_arrays(x.numpy())
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        options = ProbeOptions(cache_dir=cache)
        probe_module(model, probe, display_path="a.pt", options=options)
        [path] = (cache / "graphs").glob("*.graph")
        key, data = path.stem, path.read_bytes()
        graph = export_mod._read_cache(cache / "graphs", key, model)
        assert graph is not None

        def warm() -> None:
            assert probe_module(model, probe, display_path="b.pt", options=options).cache_hit

        def checks() -> None:
            unpack(data, "graph", key)
            assert not export_mod._mismatch(graph, model)

        t_warm, t_read, t_checks, t_key = interleaved(
            [
                warm,
                lambda: export_mod._read_cache(cache / "graphs", key, model),
                checks,
                lambda: export_mod._architecture_digest(model, x[:3], ""),
            ],
            repeat,
        )
    share = 100 * t_checks / t_warm
    return (
        f"| {name} | {len(data) / 1024:.0f} | {t_warm * 1e3:.1f} | {t_read * 1e3:.2f} | "
        f"{t_checks * 1e3:.3f} | {share:.2f}% | {t_key * 1e3:.2f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="tiny models")
    args = parser.parse_args(argv)
    print(
        "| model | entry KiB | warm 2nd-checkpoint probe ms | entry read + checks ms "
        "| checks alone ms | checks / warm probe | cache key ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, factory, shape in models(args.quick):
        print(bench(name, factory, shape, args.repeat), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
