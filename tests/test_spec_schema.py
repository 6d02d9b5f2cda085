"""The published JSON Schema: in sync with the model, accepts the examples, rejects mistakes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from microforge.spec import FIELD_TYPES, OPERATIONS, spec_json_schema, write_json_schema
from microforge.spec.schema import SCHEMA_FILE, schema_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPECS = sorted(
    [*ROOT.glob("blueprints/ecommerce/specs/*.yaml"), *ROOT.glob("tests/specs/*.yaml")]
)
VALID: dict[str, Any] = {
    "name": "shop",
    "entities": [{"name": "Product", "fields": [{"name": "sku", "type": "string"}]}],
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_shipped_file_matches_the_model() -> None:
    shipped = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert shipped == spec_json_schema(), "run: python -m microforge.spec"
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()


def test_write_json_schema(tmp_path: Path) -> None:
    target = write_json_schema(tmp_path / "s.json")
    assert json.loads(target.read_text(encoding="utf-8")) == spec_json_schema()


def test_schema_header() -> None:
    schema = spec_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith("service-spec.schema.json")
    assert schema["title"]
    assert schema["description"]


def _properties(node: object) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        for name, value in (node.get("properties") or {}).items():
            found.append((name, value))
        for value in node.values():
            found += _properties(value)
    elif isinstance(node, list):
        for value in node:
            found += _properties(value)
    return found


def test_every_property_has_a_description() -> None:
    schema = spec_json_schema()
    properties = [
        (n, p) for n, p in _properties(schema) if "$ref" in p or "type" in p or "anyOf" in p
    ]
    assert len(properties) > 30
    missing = [name for name, prop in properties if not prop.get("description")]
    assert missing == []


def test_enums_are_published() -> None:
    text = json.dumps(spec_json_schema())
    assert json.dumps(list(FIELD_TYPES)) in text
    assert json.dumps(list(OPERATIONS)) in text


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_examples_are_accepted(validator: jsonschema.Draft202012Validator, path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(data)) == []


def _with(change: dict[str, Any], where: str = "field") -> dict[str, Any]:
    data = json.loads(json.dumps(VALID))
    if where == "field":
        data["entities"][0]["fields"][0].update(change)
    elif where == "entity":
        data["entities"][0].update(change)
    else:
        data.update(change)
    return data


def test_minimal_spec_is_accepted(validator: jsonschema.Draft202012Validator) -> None:
    assert validator.is_valid(VALID)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"type": "strng"}, "field"),
        ({"requried": True}, "field"),
        ({"required": "yes"}, "field"),
        ({"name": "Sku"}, "field"),
        ({"max_length": 0}, "field"),
        ({"type": "integer", "max_length": 3}, "field"),
        ({"type": "enum"}, "field"),
        ({"type": "ref"}, "field"),
        ({"type": "uuid", "references": "User"}, "field"),
        ({"name": "product"}, "entity"),
        ({"operations": ["reed"]}, "entity"),
        ({"permissions": {"create": "Product Write"}}, "entity"),
        ({"fields": []}, "entity"),
        ({"name": "Shop"}, "top"),
        ({"entities": []}, "top"),
        ({"rate_limit": {"default": "100/min"}}, "top"),
        ({"events": {"consumes": [{"event": "OrderCreated", "handler": "h"}]}}, "top"),
        ({"depends_on": [{"service": "catalog", "entity": "product"}]}, "top"),
        ({"extra": 1}, "top"),
    ],
)
def test_obvious_mistakes_are_rejected(
    validator: jsonschema.Draft202012Validator, change: dict[str, Any], where: str
) -> None:
    assert not validator.is_valid(_with(change, where))


def test_missing_name_is_rejected(validator: jsonschema.Draft202012Validator) -> None:
    assert not validator.is_valid({"entities": VALID["entities"]})
