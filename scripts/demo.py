"""`make demo`: train a faulty example and its healthy twin, then inspect both runs as a user would.

The two scripts in examples/ differ in one line, the SGD learning rate (0.5 against 0.02). Each
writes its checkpoint and metrics log into its run folder under OUT (default build/demo/, ignored
by git) the way a real training run does. Then `nnprobe inspect` reads the scripts, the
checkpoints and the logs together, and `nnprobe report` writes the offline HTML page with the
pictures; the two commands run side by side (two cores), each with one torch thread. Last comes
a summary: what was found per evidence band for each twin, on which script lines the runtime
findings landed, and whether each twin shows what its docstring says it should.

Exit status: 0 when both twins show their lesson, 1 when a run failed or a lesson is missing.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULTY, HEALTHY = "digits_cnn_lr_too_high", "digits_cnn_lr_ok"
TWINS = (FAULTY, HEALTHY)
FACTORY = "DigitsCNN"
PROBE = f"examples/{FAULTY}.py:probe_batch"
BANDS = {
    "1": "static",
    "2": "weights",
    "3": "activations",
    "4": "gradients",
    "5": "logs",
    "9": "inspection",
}
# One line of `nnprobe inspect`'s text output: "path:line:col: NP301 [error] message".
FINDING = re.compile(r"^(?P<path>\S+):(?P<line>\d+):\d+: (?P<code>NP\d{3}) \[\w+\] ")
# The paragraphs of an example's docstring that say what nnprobe reports on the script alone and
# on its run (codes in parentheses are explanations, not expectations).
PARAGRAPH = r"{}:(.*?)(?:\n\s*\n|\Z)"


def expected(script: Path) -> set[str]:
    """Codes the example's docstring promises for the script and its run together."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    codes: set[str] = set()
    for heading in ("Expected nnprobe findings", "Expected in its run"):
        match = re.search(PARAGRAPH.format(re.escape(heading)), docstring, re.S)
        if match:
            codes |= set(re.findall(r"\bNP\d{3}\b", re.sub(r"\([^)]*\)", "", match.group(1))))
    return codes


def shown(path: Path) -> str:
    """`path` relative to the checkout when inside it (shorter commands to copy), else absolute."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def environment() -> dict[str, str]:
    # Two processes share two cores; more torch threads each would only contend.
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")


def train(out: Path, epochs: int) -> bool:
    """Run both training scripts at once in `out` (their default --out is runs/<name>/)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)
    procs = {}
    for name in TWINS:
        command = [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--epochs", str(epochs)]
        print(f"+ (cd {shown(out)} && python examples/{name}.py --epochs {epochs})", flush=True)
        procs[name] = subprocess.Popen(
            command,
            cwd=out,
            env=environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    ok = True
    for name, proc in procs.items():
        output, _ = proc.communicate()
        lines = output.strip().splitlines()
        if proc.returncode != 0:
            ok = False
            print(f"{name} failed (exit {proc.returncode}):\n{output}", file=sys.stderr)
            continue
        epochs_seen = [line for line in lines if line.startswith("epoch ")]
        print(f"  {name}: {epochs_seen[-1] if epochs_seen else '(no epoch line)'}")
    return ok


def nnprobe_args(out: Path) -> list[str]:
    """The paths and probe options both commands get: scripts, run folders, factories, inputs."""
    runs = out / "runs"
    args = [f"examples/{name}.py" for name in TWINS] + [shown(runs)]
    for name in TWINS:
        args += ["--model", f"{shown(runs / name)}/*.pt=examples/{name}.py:{FACTORY}"]
    return args + ["--probe", PROBE]


def inspect_and_report(out: Path) -> tuple[subprocess.CompletedProcess[str], int, Path]:
    args = nnprobe_args(out)
    report = out / "report.html"
    report.unlink(missing_ok=True)
    inspect_cmd = ["inspect", *args, "--fail-on", "never"]
    report_cmd = ["report", *args, "-o", shown(report)]
    for command in (inspect_cmd, report_cmd):
        print("+ nnprobe " + shlex.join(command), flush=True)
    nnprobe = [sys.executable, "-m", "nnprobe"]
    common = {"cwd": ROOT, "env": environment(), "text": True}
    pictures = subprocess.Popen([*nnprobe, *report_cmd], stderr=subprocess.PIPE, **common)
    findings = subprocess.run(
        [*nnprobe, *inspect_cmd, "--no-color"], capture_output=True, check=False, **common
    )
    _, report_err = pictures.communicate()
    if report_err.strip():
        print(report_err.strip(), file=sys.stderr)
    return findings, pictures.returncode, report


def summarise(text: str) -> bool:
    """Print what each twin showed, by band, and whether it is what its docstring promises."""
    codes: dict[str, set[str]] = defaultdict(set)
    layer_lines: dict[str, set[int]] = defaultdict(set)
    for line in text.splitlines():
        match = FINDING.match(line)
        if not match:
            continue
        path, code = match["path"], match["code"]
        twin = next((name for name in TWINS if f"{name}/" in path or f"{name}.py" in path), None)
        if twin is None:
            continue
        codes[twin].add(code)
        if path.endswith(".py") and code[2] in "234":
            layer_lines[twin].add(int(match["line"]))
    print("\nSummary")
    all_shown = True
    for name in TWINS:
        found = codes[name]
        print(f"  {name}.py and its run:")
        if not found:
            print("    nothing found in the script, the checkpoint or the log")
        for digit, band in BANDS.items():
            in_band = sorted(c for c in found if c[2] == digit)
            if in_band:
                print(f"    {band:<12} {' '.join(in_band)}")
        if layer_lines[name]:
            lines = ", ".join(str(n) for n in sorted(layer_lines[name]))
            print(f"    runtime findings on the script's layer lines {lines}")
        promised = expected(ROOT / "examples" / f"{name}.py")
        missing = promised - found
        extra = found - promised if not promised else set()
        if missing or extra:
            all_shown = False
            print(f"    NOT AS EXPECTED: missing {sorted(missing)}, unexpected {sorted(extra)}")
        else:
            what = " ".join(sorted(promised)) or "no finding"
            print(f"    as its docstring says: {what}")
    return all_shown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "demo", help="run folder")
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    out = args.out.resolve()
    start = time.perf_counter()

    if not train(out, args.epochs):
        return 1
    findings, report_status, report = inspect_and_report(out)
    print(findings.stdout, end="")
    if findings.returncode not in (0, 1) or report_status != 0 or not report.is_file():
        print(findings.stderr, file=sys.stderr)
        print("the inspection failed (see above)", file=sys.stderr)
        return 1
    lessons_shown = summarise(findings.stdout)
    print(f"\nReport: {report}")
    print(f"  open it in a browser: xdg-open {shlex.quote(str(report))}  (or file://{report})")
    print(f"demo took {time.perf_counter() - start:.1f} s")
    return 0 if lessons_shown else 1


if __name__ == "__main__":
    sys.exit(main())
