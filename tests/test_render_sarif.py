"""The SARIF renderer against the OASIS SARIF 2.1.0 schema and its golden file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from render_samples import sample_report

import nnprobe
from nnprobe.core.engine import Report
from nnprobe.report import sarif

# CI checks out ../shared beside the repository; the schema is not copied into the project.
SARIF_SCHEMA = (
    Path(__file__).resolve().parents[2] / "shared" / "schemas" / "sarif-schema-2.1.0.json"
)


@pytest.fixture(autouse=True)
def _default_docs_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NNPROBE_DOCS_URL", raising=False)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft4Validator:
    if not SARIF_SCHEMA.is_file():
        pytest.skip(f"SARIF 2.1.0 schema not found at {SARIF_SCHEMA} (it lives in ../shared)")
    return jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text(encoding="utf-8")))


def render(report: Report, root: Path | None = None) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sarif.render(report, root=root))
    return data


def test_matches_golden(golden: Callable[[str, str], None]) -> None:
    data = render(sample_report())
    assert data["runs"][0]["tool"]["driver"]["version"] == nnprobe.__version__
    for key in ("version", "semanticVersion"):
        data["runs"][0]["tool"]["driver"][key] = "<version>"
    golden("report.sarif", json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def test_valid_against_sarif_schema(validator: jsonschema.Draft4Validator, tmp_path: Path) -> None:
    missing = Report(files=0, missing=["nope.py"])
    for report, root in ((sample_report(), tmp_path), (Report(files=2), None), (missing, None)):
        errors = sorted(validator.iter_errors(render(report, root)), key=str)
        assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_driver_and_rules() -> None:
    run = render(sample_report())["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "nnprobe"
    assert driver["informationUri"].startswith("https://")
    ids = [rule["id"] for rule in driver["rules"]]
    assert ids == ["NP901", "NP906", "NP907", "NP990"]
    np901 = driver["rules"][0]
    assert np901["name"] == "load-failed"
    assert np901["shortDescription"]["text"].startswith("Reports a file nnprobe was asked to")
    assert np901["helpUri"] == "https://nnprobe.dev/rules/NP901"
    assert np901["defaultConfiguration"]["level"] == "error"
    assert np901["properties"]["confidence"] == "high"
    assert np901["properties"]["evidence"] == "inspection"
    assert np901["help"]["markdown"].startswith("# NP901: load-failed")
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]


def test_results() -> None:
    run = render(sample_report())["runs"][0]
    assert run["columnKind"] == "unicodeCodePoints"
    by_code = {r["ruleId"]: r for r in run["results"]}
    assert by_code["NP907"]["level"] == "note"
    assert by_code["NP990"]["level"] == "warning"
    assert by_code["NP990"]["properties"] == {"confidence": "medium"}
    location = by_code["NP990"]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "train.py", "uriBaseId": "%SRCROOT%"}
    assert location["region"] == {"startLine": 7, "startColumn": 28, "endLine": 7, "endColumn": 49}
    checkpoint = by_code["NP901"]["locations"][0]
    assert checkpoint["physicalLocation"]["artifactLocation"]["uri"] == "checkpoints/model%201.pt"
    assert checkpoint["logicalLocations"] == [{"fullyQualifiedName": "encoder.0", "kind": "module"}]


def test_fix_becomes_replacement() -> None:
    run = render(sample_report())["runs"][0]
    result = next(r for r in run["results"] if r["ruleId"] == "NP990")
    (fix,) = result["fixes"]
    assert fix["description"]["text"] == "pass the logits"
    (change,) = fix["artifactChanges"]
    (replacement,) = change["replacements"]
    assert replacement == {
        "deletedRegion": {"startLine": 7, "startColumn": 28, "endLine": 7, "endColumn": 49},
        "insertedContent": {"text": "out"},
    }
    assert all("fixes" not in r for r in run["results"] if r["ruleId"] != "NP990")


def test_root_and_absolute_paths(tmp_path: Path) -> None:
    run = render(sample_report(), root=tmp_path)["runs"][0]
    uri = run["originalUriBaseIds"]["%SRCROOT%"]["uri"]
    assert uri.startswith("file://") and uri.endswith("/")
    assert sarif.artifact_location(str(tmp_path / "a b.py")) == {
        "uri": (tmp_path / "a b.py").as_uri()
    }


def test_missing_paths_are_tool_notifications() -> None:
    invocation = render(Report(missing=["nope.py"]))["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert invocation["toolExecutionNotifications"][0]["message"]["text"].endswith("nope.py")
