"""Fuzz the static analyzer and the config parser with a large budget and print what ran.

The CI test (tests/robustness/test_fuzz_static.py) runs a small fixed budget; this runs many more
inputs with a fresh random seed, never stops at a failure, and prints the figures issue 8 asks
for: inputs run by kind, how they ended, rule answers, NP907 isolations and escaped exceptions
(both must be 0), and wall time. Each failure is printed with its input so it can be reduced.

    .venv/bin/python bench/fuzz_static.py --examples 20000
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "robustness"))

import static_fuzz as sf  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

# Share of the budget per kind of input.
SHARES = {
    "generated": 0.25,
    "python-text": 0.15,
    "mutated-fixture": 0.30,
    "mutated-generated": 0.10,
    "mutated-bytes": 0.10,
    "config-table": 0.06,
    "config-file": 0.04,
}


def run(strategy: st.SearchStrategy[Any], check: Callable[[Any], object], count: int) -> None:
    """`count` inputs from `strategy`, generated only (no shrinking), every outcome recorded."""

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def each(value: Any) -> None:
        with contextlib.suppress(Exception):  # the check records it in the tally; keep going
            check(value)

    each()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000, help="inputs in all")
    args = parser.parse_args()

    config = sf.fuzz_config()
    seeds = sf.seed_sources()
    folder = sf.scratch_folder()
    tally = sf.Tally()
    kinds: dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], object]]] = {
        "generated": (
            sf.generated_scripts(),
            lambda s: sf.check_source(tally, "generated", s, config),
        ),
        "python-text": (
            sf.python_text(),
            lambda s: sf.check_source(tally, "python-text", s, config),
        ),
        "mutated-fixture": (
            st.sampled_from(seeds).flatmap(sf.typed_edits),
            lambda s: sf.check_source(tally, "mutated-fixture", s, config),
        ),
        "mutated-generated": (
            sf.generated_scripts().flatmap(sf.typed_edits),
            lambda s: sf.check_source(tally, "mutated-generated", s, config),
        ),
        "mutated-bytes": (
            st.sampled_from(seeds).flatmap(sf.mutated_bytes),
            lambda b: sf.check_file(tally, "mutated-bytes", b, config, folder),
        ),
        "config-table": (sf.config_tables(), lambda t: sf.check_config_table(tally, t)),
        "config-file": (
            sf.typed_edits(sf.CONFIG_TEXT),
            lambda t: sf.check_config_file(tally, t, folder),
        ),
    }
    print(f"{len(seeds)} seed scripts (fixtures, examples, regressions); {sf.SOURCE_RULES} rules")
    with sf.counting_rules(tally):
        for kind, (strategy, check) in kinds.items():
            started = time.perf_counter()
            run(strategy, check, max(1, round(args.examples * SHARES[kind])))
            took = time.perf_counter() - started
            print(f"  {kind:<18} {tally.inputs[kind]:>6} inputs  {took:6.1f} s", flush=True)
    print(tally.summary())
    for label, failures in (("NP907", tally.isolated), ("escaped", tally.escaped)):
        for kind, message, source in failures[:5]:
            print(f"--- {label} on a {kind} input: {message}\n{source[:2000]}")
    return 1 if tally.isolated or tally.escaped else 0


if __name__ == "__main__":
    raise SystemExit(main())
