"""Symbolic links out of the workspace are not followed for model data.

The file behind each link is a hostile pickle outside the workspace: had nnprobe read it, the
answer would be NP902 (refused pickle); a link that is refused unread answers NP901 saying so.
Decided here: a directory walk, the editor's checkpoint watcher and the worker never follow a link
out of the workspace; a path the user typed on the command line is followed (they asked for it),
and links that stay inside the workspace are followed everywhere.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from corpus import raw_pickle  # noqa: E402

from nnprobe.probe.worker_client import WorkerClient  # noqa: E402


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(workspace, sentinel): workspace/runs/{linked.pt -> ../../outside/evil_raw.pt,
    inner.pt -> ../weights/real.pt}, and workspace/shared -> ../outside (a linked folder)."""
    outside, workspace = tmp_path / "outside", tmp_path / "workspace"
    outside.mkdir()
    (workspace / "runs").mkdir(parents=True)
    (workspace / "weights").mkdir()
    sentinel = tmp_path / "SENTINEL_code_ran"
    evil = raw_pickle(4)(outside, sentinel)
    (workspace / "runs" / "linked.pt").symlink_to(evil)
    torch.save({"fc.weight": torch.randn(4, 4)}, workspace / "weights" / "real.pt")
    (workspace / "runs" / "inner.pt").symlink_to(workspace / "weights" / "real.pt")
    (workspace / "shared").symlink_to(outside, target_is_directory=True)
    return workspace, sentinel


def _inspect(workspace: Path, *paths: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "nnprobe", "inspect", "--output-format", "json", *paths],
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr
    return list(json.loads(done.stdout)["findings"])


def test_directory_walk_refuses_links_out_unread(layout: tuple[Path, Path]) -> None:
    workspace, sentinel = layout
    findings = _inspect(workspace, ".")
    linked = [f for f in findings if str(f["path"]).endswith("linked.pt")]
    assert [f["code"] for f in linked] == ["NP901"], findings
    assert "outside the workspace: not read" in str(linked[0]["message"])
    # the linked folder is not walked: its evil_raw.pt is not reported at all
    assert not [f for f in findings if "shared" in str(f["path"])], findings
    # a link inside the workspace is an ordinary checkpoint: read (NP905 says no model was found)
    assert "NP905" in [f["code"] for f in findings if str(f["path"]).endswith("inner.pt")]
    assert not [
        f
        for f in findings
        if str(f["path"]).endswith("inner.pt") and f["code"] in ("NP901", "NP902")
    ], findings
    assert not sentinel.exists()


def test_a_link_named_on_the_command_line_is_followed(layout: tuple[Path, Path]) -> None:
    workspace, sentinel = layout
    findings = _inspect(workspace, "runs/linked.pt")
    assert [f["code"] for f in findings] == ["NP902"], findings
    assert not sentinel.exists()


def test_worker_probe_refuses_links_out(layout: tuple[Path, Path], worker: WorkerClient) -> None:
    workspace, sentinel = layout
    link = workspace / "runs" / "linked.pt"
    params = {"checkpoint": str(link), "display": "linked.pt", "config": {"root": str(workspace)}}
    response = worker.request("probe", params, timeout=120)
    assert response["error"]["code"] == "NP901", response
    assert "outside the workspace" in response["error"]["message"]
    assert not sentinel.exists()


def test_worker_inspect_refuses_links_out(layout: tuple[Path, Path], worker: WorkerClient) -> None:
    workspace, sentinel = layout
    link = workspace / "runs" / "linked.pt"
    params = {"checkpoint": str(link), "root": str(workspace), "trusted": False}
    response = worker.request("inspect", params, timeout=120)
    findings = response["result"]["findings"]
    assert [f["code"] for f in findings] == ["NP901"], response
    assert "outside the workspace" in findings[0]["message"]
    assert not sentinel.exists()
