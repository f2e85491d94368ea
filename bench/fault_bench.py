"""Fault-injection figures for the probe worker: each fault of tests/robustness/worker_faults.py
(killed mid-job, hung past its time budget, out of memory under the job's address-space cap,
forward raises, forward returns NaN) is injected `--repeat` times into one real worker through the
WorkerClient the CLI and the language server share, each followed by a job on a good model.

It prints, per fault: how many were injected, how many survived (reported with the promised code
and message, the worker replaced exactly when it had been killed, the next job succeeded), how the
fault was reported, how many workers were restarted, how many next jobs succeeded, and the median
seconds from sending the job to its report.

    python bench/fault_bench.py [--repeat 5]

The language-server side of the same faults is tests/robustness/test_worker_faults.py (run it with
`-s` for its summary lines).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests" / "robustness"))

from worker_faults import FAULTS, Outcome, build_workspace, inject  # noqa: E402

from nnprobe.probe.worker_client import WorkerClient  # noqa: E402


def run(repeat: int) -> list[Outcome]:
    with tempfile.TemporaryDirectory(prefix="nnprobe-faults-") as tmp:
        os.environ["NNPROBE_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = build_workspace(Path(tmp) / "workspace")
        client = WorkerClient()
        try:
            client.start()
            return [inject(client, root, fault) for _ in range(repeat) for fault in FAULTS]
        finally:
            client.close()


def table(outcomes: list[Outcome]) -> str:
    header = (
        "| fault | injected | survived | reported as | workers restarted | next job ok "
        "| median s to report |"
    )
    rows = [header, "|---|---:|---:|---|---:|---:|---:|"]
    for fault in FAULTS:
        mine = [o for o in outcomes if o.fault is fault]
        reported = sorted({str(o.code) for o in mine})
        rows.append(
            f"| {fault.name} | {len(mine)} | {sum(o.survived for o in mine)} "
            f"| {', '.join(reported)} | {sum(o.restarted for o in mine)} "
            f"| {sum(o.next_ok for o in mine)} "
            f"| {statistics.median(o.seconds for o in mine):.2f} |"
        )
    rows.append(
        f"| **all** | {len(outcomes)} | {sum(o.survived for o in outcomes)} | "
        f"| {sum(o.restarted for o in outcomes)} | {sum(o.next_ok for o in outcomes)} | |"
    )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="injections of each fault")
    args = parser.parse_args()
    outcomes = run(args.repeat)
    print(table(outcomes))
    for outcome in outcomes:
        if not outcome.survived:
            print(f"NOT SURVIVED: {outcome.fault.name}: {outcome}")
    examples = {o.fault.name: o.message for o in outcomes}
    print()
    for name, message in examples.items():
        print(f"- {name}: {message}")
    return 0 if all(o.survived for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
