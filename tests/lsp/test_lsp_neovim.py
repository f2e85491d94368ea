"""A third-party client: Neovim (Debian's 0.7) attaches to `nnprobe serve` through its built-in LSP
client, as a user's config would, and must receive the expected codes, fixes and commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsp_scripts import UNICODE

COLLECT = Path(__file__).parent / "nvim" / "collect.lua"

pytestmark = pytest.mark.skipif(
    shutil.which("nvim") is None,
    reason="Neovim is not installed (apt-get install neovim; `make test` does it as root)",
)


def test_neovim_receives_the_diagnostics_and_actions(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(UNICODE, encoding="utf-8")
    env = {
        **os.environ,
        "NNPROBE_SERVER_CMD": json.dumps([sys.executable, "-m", "nnprobe", "serve"]),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    run = subprocess.run(
        ["nvim", "--headless", "-u", "NONE", "-i", "NONE", "-c", f"luafile {COLLECT}", str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("NNPROBE-RESULT ")]
    assert lines, f"no result from Neovim (rc {run.returncode}):\n{run.stdout}\n{run.stderr}"
    result = json.loads(lines[-1].removeprefix("NNPROBE-RESULT "))

    assert result["received"] is True
    assert result["codes"] == ["NP104"]
    line = UNICODE.splitlines()[12]
    # Neovim turns the UTF-16 columns it was sent into byte columns: if they were counted
    # wrongly on the server, the bytes would land beside the softmax call.
    start = len(line[: line.index("F.softmax")].encode("utf-8"))
    end = len(line[: line.index(", y)")].encode("utf-8"))
    assert result["ranges"] == [[12, start, 12, end]]
    assert result["hrefs"][0].endswith("/NP104")
    assert result["actions"][:2] == ["Remove the softmax", "Suppress NP104 on this line"]
    assert "Fix all nnprobe auto-fixable problems" in result["actions"]
    assert result["inspect"] == "findings"
