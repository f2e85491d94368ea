"""The VS Code extension's manifest against the server it starts: every setting the server accepts
is contributed (with a description and the server's default), nothing the server would reject is,
and no palette command id collides with a server command (VS Code refuses a second registration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pygls")

from nnprobe.server import settings  # noqa: E402
from nnprobe.server.app import create_server  # noqa: E402
from nnprobe.server.features import commands  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "client-vscode" / "package.json"
CLIENT_ONLY = {"trace.server"}  # vscode-languageclient's own setting
FROM_TRUST = {"trusted"}  # the extension sends Workspace Trust, never a user setting


def _camel(key: str) -> str:
    head, *rest = key.split("-")
    return head + "".join(part.title() for part in rest)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    create_server()  # features register their settings keys on the server's creation
    data: dict[str, Any] = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return data


def _properties(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    props: dict[str, dict[str, Any]] = manifest["contributes"]["configuration"]["properties"]
    return {key.removeprefix("nnprobe."): value for key, value in props.items()}


def test_every_server_setting_is_contributed(manifest: dict[str, Any]) -> None:
    accepted = {
        *(_camel(key) for key in settings.LINT_KEYS),
        "debounce",
        "logLevel",
        "interpreter",
        *settings._EXTRA_KEYS,
    }
    props = _properties(manifest)
    assert sorted(accepted - set(props)) == []
    for key in accepted:
        assert len(props[key].get("markdownDescription", "")) > 20, key
        assert "default" in props[key], key
    assert props["debounce"]["default"] == settings.DEFAULT_DEBOUNCE_MS
    assert props["logLevel"]["default"] == settings.Settings().log_level
    assert set(props["logLevel"]["enum"]) <= set(settings.LOG_LEVELS)


def test_every_contributed_setting_is_accepted_by_the_server(manifest: dict[str, Any]) -> None:
    props = _properties(manifest)
    assert not FROM_TRUST & set(props)
    samples = {"select": ["NP1"], "severity": {"NP103": "warning"}, "rules": {}, "debounce": 50}
    for key, prop in props.items():
        if key in CLIENT_ONLY:
            continue
        value = samples.get(key, prop["default"])
        if value is None:
            value = prop.get("minimum", "/usr/bin/python3")
        settings.parse_settings({key: value})  # raises ConfigError naming an unknown key


def test_palette_commands_do_not_collide_with_server_commands(manifest: dict[str, Any]) -> None:
    server_ids = {commands.INSPECT, commands.DEBUG_INFO, *commands.PICTURES}
    palette = {entry["command"] for entry in manifest["contributes"]["commands"]}
    assert palette.isdisjoint(server_ids)
    assert len(palette) == 8
