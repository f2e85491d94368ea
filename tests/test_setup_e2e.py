"""The extension's end-to-end set-up (client-vscode/scripts/setup-e2e.sh) as `make test` starts it.

`make test` runs it through `npm run` under the system Node 20; the outer npm's environment must
not reach the inner installs (code-server's postinstall read "node/v20" from the inherited
npm_config_user_agent and failed on every machine without a cache). And the cache it fills must
be keyed by the script itself, so a changed set-up can never be hidden by an old install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "client-vscode" / "scripts" / "setup-e2e.sh"

pytestmark = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")


def _print_env(script: Path, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """What the script would install into and the environment its inner installs would get,
    when started the way `make test` starts it: by an npm script."""
    package = tmp_path / "outer"
    package.mkdir(exist_ok=True)
    (package / "package.json").write_text(
        json.dumps(
            {
                "name": "outer",
                "version": "1.0.0",
                "private": True,
                "scripts": {"setup": f"bash {script} --print-env"},
            }
        )
    )
    (package / "node_modules" / ".bin").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, NNPROBE_E2E_CACHE=str(tmp_path / "cache"), NPM_CONFIG_LOGLEVEL="warn")
    result = subprocess.run(
        ["npm", "run", "--silent", "setup"],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    prefix = lines[0].removeprefix("CODE_SERVER_PREFIX=")
    inner = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    return prefix, inner


def test_inner_installs_do_not_inherit_the_outer_npm(tmp_path: Path) -> None:
    _, inner = _print_env(SCRIPT, tmp_path)
    leaked = sorted(name for name in inner if name.lower().startswith("npm_"))
    assert leaked == [], leaked
    assert "INIT_CWD" not in inner and "NODE" not in inner
    path = inner["PATH"].split(":")
    assert not [p for p in path if p.endswith(("node_modules/.bin", "node-gyp-bin"))], path
    # What the user set survives: the cache location and the rest of the environment.
    assert inner["NNPROBE_E2E_CACHE"] == str(tmp_path / "cache")
    assert inner["HOME"] == os.environ["HOME"]


def test_the_cache_is_keyed_by_the_script_content(tmp_path: Path) -> None:
    copy = tmp_path / "setup-e2e.sh"
    shutil.copy(SCRIPT, copy)
    before, _ = _print_env(copy, tmp_path)
    assert before == _print_env(copy, tmp_path)[0], "the key must be stable for the same script"
    with copy.open("a") as handle:
        handle.write("# any change to the set-up\n")
    after, _ = _print_env(copy, tmp_path)
    assert Path(before).parent == Path(after).parent == tmp_path / "cache"
    assert before != after
    assert "4.139.1" in Path(after).name
