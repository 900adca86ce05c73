"""The shipped JSON Schema is the generated one, documents every field, and accepts the examples."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from cyberdesk_runner.spec.schema import job_json_schema

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "runner" / "cyberdesk_runner" / "job-schema.json"


def test_shipped_schema_is_up_to_date() -> None:
    assert json.loads(SHIPPED.read_text(encoding="utf-8")) == job_json_schema(), (
        "regenerate: python -m cyberdesk_runner.spec.schema > runner/cyberdesk_runner/job-schema.json"
    )


def test_module_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "cyberdesk_runner.spec.schema"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stderr == ""
    assert result.stdout == SHIPPED.read_text(encoding="utf-8")


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = [(f"#/{name}", prop) for name, prop in schema["properties"].items()]
    for model, definition in schema["$defs"].items():
        found += [(f"{model}.{name}", prop) for name, prop in definition.get("properties", {}).items()]
    return found


def _title(schema: dict[str, Any], prop: dict[str, Any]) -> str | None:
    """A field's title, or for a `$ref` field the referenced model's (editors show that one)."""
    if "$ref" in prop:
        return schema["$defs"][prop["$ref"].rsplit("/", 1)[1]].get("title")
    return prop.get("title")


def test_every_field_has_a_title_and_a_description() -> None:
    schema = job_json_schema()
    missing = [
        name for name, prop in _properties(schema) if not _title(schema, prop) or not prop.get("description")
    ]
    assert missing == []
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "target"]
    assert schema["oneOf"] == [{"required": ["workflow"]}, {"required": ["steps"]}]


def test_duration_defaults_are_written_like_in_job_files() -> None:
    schema = job_json_schema()
    assert schema["properties"]["timeout"]["default"] == "2h"
    assert schema["$defs"]["RetryPolicy"]["properties"]["backoff"]["default"] == "30s"


def test_schema_keys_match_the_shipped_examples() -> None:
    """A light structural check (no JSON Schema validator is installed): every key is known."""
    schema = job_json_schema()
    for path in sorted((REPO / "jobs").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert set(data) <= set(schema["properties"]), path.name
        assert set(schema["required"]) <= set(data), path.name
