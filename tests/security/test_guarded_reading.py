"""Scripts, settings and training logs nnprobe must not read the way their name invites (issue 12,
item 4): each one is refused with a single NP901 naming the file and the reason, within a bounded
time and under 1 GB, and the good file beside it keeps its findings.

Over the CLI: `nnprobe inspect .` of a folder holding one case of tests/security/corpus_reading.py
beside a good file, in a real subprocess whose peak memory is measured (the largest resident set
among the processes it waited for, read by a small parent that runs nothing else). Over the
language server (the real `nnprobe serve` through pytest-lsp): the inspect command on scripts
that are a FIFO, a link to /dev/zero, a link out and 50 MB; settings files that are nested too
deep and a link out (a warning, and the defaults lint); logs that are a FIFO, a link to /dev/zero
and damaged inside; and afterwards a newly opened document still gets its diagnostics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tensorboard")

import corpus_reading as cr  # noqa: E402
from cases import clean_env, run_in_session  # noqa: E402

NNPROBE = str(Path(sys.executable).with_name("nnprobe"))
TIMEOUT_S = 60
GiB = 2**30
# The parent that runs the CLI and reports the peak resident set of what it waited for (KiB on
# Linux), so one measurement is not mixed with the test session's other children.
MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "open(sys.argv[1], 'w').write(str(peak))\n"
    "sys.exit(code)\n"
)
BAD_NAMES = {
    "script": "train.py",
    "config-link-out": "pyproject.toml",
    "config-deep-toml": "pyproject.toml",
    "config-fifo": "nnprobe.toml",
}


def bad_name(case: cr.Reading, built: Path) -> str:
    for prefix, name in BAD_NAMES.items():
        if case.name.startswith(prefix):
            return name
    return built.name


def inspect_folder(folder: Path, env: dict[str, str]) -> tuple[int, str, str, int, float]:
    """(exit code, stdout, stderr, peak RSS in bytes, seconds) of `nnprobe inspect .`."""
    peak_file = folder.parent / f"{folder.name}.peak"
    command = [sys.executable, "-c", MEASURE, str(peak_file), NNPROBE, "inspect"]
    command += ["--output-format", "json", "--untrusted", "."]
    started = time.monotonic()
    done, timed_out = run_in_session(command, folder, env, TIMEOUT_S)
    if timed_out:
        pytest.fail(f"nnprobe inspect did not finish in {TIMEOUT_S} s")
    elapsed = time.monotonic() - started
    return done.returncode, done.stdout, done.stderr, int(peak_file.read_text()) * 1024, elapsed


CASES = [case for case in cr.CASES if isinstance(case, cr.Reading)]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cli_refuses_with_one_np901_and_keeps_the_good_findings(
    case: cr.Reading, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    sentinel = tmp_path / "SENTINEL_code_ran"
    built = case.build(workspace, sentinel)
    code, stdout, stderr, peak, elapsed = inspect_folder(workspace, clean_env(tmp_path, case.env))

    print(f"{case.name}: exit {code}, {elapsed:.2f} s, peak RSS {peak / 2**20:.0f} MiB")
    assert code in (0, 1), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    findings: list[dict[str, Any]] = json.loads(stdout)["findings"]
    assert not [f for f in findings if f["code"] == "NP907"], findings
    good = [f for f in findings if f["path"] == case.good and f["code"] == case.good_code]
    assert good, f"the good file lost its {case.good_code}: {findings}"
    assert peak < GiB, f"peak RSS {peak / 2**20:.0f} MiB"
    refused = [f for f in findings if f["code"] == "NP901"]
    if case.code != "NP901":
        assert not refused, refused
        return
    name = bad_name(case, built)
    assert len(refused) == 1, refused
    [finding] = refused
    assert finding["path"] == name, finding
    assert name in finding["message"] and case.says in finding["message"], finding["message"]


def test_a_bad_docs_url_template_warns_and_uses_the_default(tmp_path: Path) -> None:
    [case] = [c for c in CASES if c.name == "docs-url-bad-template"]
    workspace = tmp_path / "ws"
    workspace.mkdir()
    case.build(workspace, tmp_path / "SENTINEL_code_ran")
    code, stdout, stderr, _, _ = inspect_folder(workspace, clean_env(tmp_path, case.env))
    assert code == 1, stderr
    [finding] = json.loads(stdout)["findings"]
    assert finding["url"] == "https://nnprobe.dev/rules/NP101"
    assert "NNPROBE_DOCS_URL='{' is not a usable template" in stderr, stderr


def test_an_oversized_script_that_is_not_a_training_script_is_skipped(tmp_path: Path) -> None:
    """A big generated module found in a walk (no torch import at its head) is no finding."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "good.py").write_text(cr.GOOD_SCRIPT, encoding="utf-8")
    cr.sparse("generated_pb2.py", "# generated\nimport struct\n", cr.SPARSE_SCRIPT)(
        workspace, tmp_path / "unused"
    )
    code, stdout, stderr, _, _ = inspect_folder(workspace, clean_env(tmp_path))
    assert code == 1, stderr
    assert [f["code"] for f in json.loads(stdout)["findings"]] == ["NP101"]


def test_a_link_inside_the_workspace_is_read(tmp_path: Path) -> None:
    """The control: a script linked from another folder of the workspace is analysed (once: the
    walk reads each real file one time, under the first name it meets)."""
    workspace = tmp_path / "ws"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "real.py").write_text(cr.GOOD_SCRIPT, encoding="utf-8")
    (workspace / "train.py").symlink_to(workspace / "src" / "real.py")
    code, stdout, stderr, _, _ = inspect_folder(workspace, clean_env(tmp_path))
    assert code == 1, stderr
    codes = sorted((f["path"], f["code"]) for f in json.loads(stdout)["findings"])
    assert codes == [("train.py", "NP101")]


def run_cli(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NNPROBE, *args],
        cwd=folder,
        env=clean_env(folder),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def test_a_named_config_that_is_a_fifo_is_a_usage_error_not_a_hang(tmp_path: Path) -> None:
    """--config names the file: failing to read it ends the run (exit 2), as a missing one does."""
    (tmp_path / "good.py").write_text(cr.GOOD_SCRIPT, encoding="utf-8")
    os.mkfifo(tmp_path / "settings.toml")
    result = run_cli(tmp_path, "inspect", "--config", "settings.toml", ".")
    assert result.returncode == 2, result.stderr
    assert "settings.toml is a named pipe (FIFO): not read" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["log-fifo", "log-tfevents-2e62-record", "log-jsonl-deep"])
def test_curves_of_a_refused_log_fails_with_the_reason(tmp_path: Path, name: str) -> None:
    [case] = [c for c in CASES if c.name == name]
    log = case.build(tmp_path, tmp_path / "SENTINEL_code_ran")
    result = run_cli(tmp_path, "curves", log.name, "-o", "curves.png")
    assert result.returncode == 2, result.stderr
    assert case.says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "curves.png").exists()
