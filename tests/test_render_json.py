"""The JSON renderer against its published schema and its golden file."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from typing import Any

import jsonschema
import pytest
from render_samples import sample_report

from nnprobe.core.engine import Report
from nnprobe.report import json as json_report


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(
        resources.files("nnprobe.report").joinpath("json_schema.json").read_text("utf-8")
    )
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_matches_golden(golden: Callable[[str, str], None]) -> None:
    golden("report.json", json_report.render(sample_report()))


def test_output_is_valid_against_schema(validator: jsonschema.protocols.Validator) -> None:
    for report in (sample_report(), Report(files=0)):
        validator.validate(json.loads(json_report.render(report)))


def test_shape() -> None:
    data: dict[str, Any] = json.loads(json_report.render(sample_report()))
    assert list(data) == ["version", "findings", "summary"]
    assert data["version"] == 1
    assert data["summary"] == {"files": 3, "errors": 2, "warnings": 1, "infos": 1}
    first = data["findings"][0]
    assert first == sample_report().findings[0].to_dict()
    fixed = next(f for f in data["findings"] if f["fix"])
    assert fixed["range"]["start"] == {"line": 7, "column": 28}


def test_schema_rejects_what_is_not_the_format(validator: jsonschema.protocols.Validator) -> None:
    data = json.loads(json_report.render(sample_report()))
    data["findings"][0]["range"]["start"]["line"] = 0
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)
    data = json.loads(json_report.render(sample_report()))
    data["extra"] = True
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(data)
