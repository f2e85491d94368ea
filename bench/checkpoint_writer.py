"""A training run's stand-in for bench/load_bench.py, in its own process as a real run is (so its
torch work never stalls the benchmark's client loop): trains the digits MLP of the runtime tests
(tests/digits_models.py), says `ready`, and on a line from stdin saves COUNT checkpoints into
FOLDER with torch.save, GAP_MS apart (default 0: back to back), printing each path as it lands.
Odd epochs have half of fc1's units planted dead, so an older checkpoint's findings differ from
the newest one's.

    python bench/checkpoint_writer.py FOLDER COUNT [GAP_MS]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "lsp")]


def main() -> int:
    import torch
    from runtime_workspace import save_checkpoint

    folder, count = Path(sys.argv[1]), int(sys.argv[2])
    gap = float(sys.argv[3]) / 1000 if len(sys.argv) > 3 else 0.0
    torch.set_num_threads(1)
    warmup = save_checkpoint(folder.parent / "warmup.tmp")  # trains once, before the burst
    warmup.unlink()
    print("ready", flush=True)
    sys.stdin.readline()
    for epoch in range(count):
        if epoch and gap:
            time.sleep(gap)  # the training between two epochs' saves
        path = save_checkpoint(folder / f"ckpt_{epoch}.pt", dead=32 if epoch % 2 else 0)
        print(path, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
