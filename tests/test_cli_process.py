"""The command line as a user runs it: `python -m nnprobe` in a subprocess, and on a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def nnprobe(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "NNPROBE_DEBUG")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "nnprobe", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "nnprobe.toml").write_text("", encoding="utf-8")
    (tmp_path / "weights.xyz").write_text("not a model\n", encoding="utf-8")
    return tmp_path


def test_json_and_exit_code(project: Path) -> None:
    result = nnprobe(project, "inspect", "--output-format", "json", "weights.xyz")
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert [f["code"] for f in json.loads(result.stdout)["findings"]] == ["NP901"]


def test_missing_path(project: Path) -> None:
    result = nnprobe(project, "inspect", "weights.xyz", "gone.py")
    assert result.returncode == 2
    assert "weights.xyz:1:1: NP901 [error]" in result.stdout
    assert "\x1b[" not in result.stdout
    assert result.stderr == "nnprobe: error: path does not exist: gone.py\n"


def test_clean_run_and_version(project: Path) -> None:
    result = nnprobe(project, "inspect", "--ignore", "NP901", "weights.xyz")
    assert (result.returncode, result.stdout) == (0, "No problems found in 1 file.\n")
    version = nnprobe(project, "--version")
    assert version.returncode == 0
    assert version.stdout.startswith("nnprobe ")


def test_bad_config_exits_2_without_traceback(project: Path) -> None:
    (project / "nnprobe.toml").write_text("[rules.NP901]\nthreshold = 3\n", encoding="utf-8")
    result = nnprobe(project, "inspect", "weights.xyz")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert "threshold" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_colour_on_a_terminal_unless_no_color(project: Path) -> None:
    import pty

    def on_tty(**env: str) -> str:
        leader, follower = pty.openpty()
        environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        environment.update(env)
        process = subprocess.Popen(
            [sys.executable, "-m", "nnprobe", "inspect", "weights.xyz"],
            cwd=project,
            env=environment,
            stdout=follower,
            stderr=subprocess.DEVNULL,
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert process.wait(timeout=120) == 1
        return b"".join(chunks).decode("utf-8")

    assert "\x1b[" in on_tty()
    assert "\x1b[" not in on_tty(NO_COLOR="1")


def test_syntax_error_snippet(project: Path) -> None:
    (project / "train.py").write_text("import torch\nx = torch.zeros(3\n", encoding="utf-8")
    result = nnprobe(project, "inspect", "--fail-on", "warning", "train.py")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("train.py:2:16: NP906 [error] syntax error:")
    assert lines[1:4] == ["  |", "2 | x = torch.zeros(3", "  |                ^"]
    assert lines[-1] == "1 error in 1 file"
