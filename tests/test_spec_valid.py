"""Valid specs load into the model; the public API and its helpers behave as documented."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

import microforge.spec as spec_api
from microforge.spec import (
    FIELD_TYPES,
    OPERATIONS,
    RESERVED_FIELD_NAMES,
    EntitySpec,
    FieldSpec,
    FieldType,
    ServiceSpec,
    SpecError,
    SpecIssue,
    load_spec,
    parse_spec,
    spec_json_schema,
    validate_spec_data,
)
from microforge.spec.naming import pluralize, snake_case

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_SPECS = sorted(
    [*ROOT.glob("blueprints/ecommerce/specs/*.yaml"), *ROOT.glob("tests/specs/*.yaml")]
)


def test_there_are_example_specs() -> None:
    assert len(EXAMPLE_SPECS) >= 3


@pytest.mark.parametrize("path", EXAMPLE_SPECS, ids=lambda p: p.name)
def test_example_specs_load(path: Path) -> None:
    spec = load_spec(path)
    assert isinstance(spec, ServiceSpec)
    assert spec.entities
    for entity in spec.entities:
        assert isinstance(entity, EntitySpec)
        assert entity.plural == entity.table
        for field in entity.fields:
            assert isinstance(field, FieldSpec)
            assert isinstance(field.type, FieldType)


def test_inventory_spec_model() -> None:
    spec = load_spec(ROOT / "tests/specs/inventory_example.yaml")
    assert spec.name == "inventory"
    assert spec.package == "inventory_service"
    product = spec.entity("Product")
    assert product is not None
    assert product.table == "products"
    assert product.snake == "product"
    assert product.operations == list(OPERATIONS)
    assert product.permissions["delete"] == "product:admin"
    assert product.states is not None
    assert product.states.field == "status"
    assert [t.name for t in product.transitions] == ["discontinue", "reactivate"]
    assert product.transitions[0].from_ == ["ACTIVE"]
    price = product.field("price")
    assert price is not None
    assert (price.type, price.precision, price.scale, price.min) == (FieldType.DECIMAL, 10, 2, 0)
    assert product.field("nope") is None
    assert spec.events.consumes[0].event == "order.OrderCreated"
    assert spec.depends_on[0].operations == ["read"]
    assert spec.rate_limit is not None
    assert spec.rate_limit.default == "100/minute"
    category = spec.entity("Category")
    assert category is not None
    assert category.table == "categories"


def test_defaults_of_optional_keys() -> None:
    spec = parse_spec(
        "name: ab\nentities:\n  - name: OrderLine\n    fields: [{name: n, type: text}]\n"
    )
    entity = spec.entities[0]
    assert entity.table == "order_lines"
    assert entity.operations == ["create", "read", "list", "update", "delete"]
    assert entity.permissions == {}
    assert entity.events == []
    assert entity.states is None
    assert entity.transitions == []
    field = entity.fields[0]
    assert (field.required, field.unique, field.index, field.default) == (False, False, False, None)
    assert spec.events.consumes == []
    assert spec.depends_on == []
    assert spec.rate_limit is None
    assert spec.package == "ab_service"


def test_service_package_uses_snake_name() -> None:
    spec = parse_spec("name: order-history\nentities: [{name: A, fields: [{name: b, type: url}]}]")
    assert spec.snake == "order_history"
    assert spec.package == "order_history_service"


@pytest.mark.parametrize(
    ("word", "plural"),
    [
        ("category", "categories"),
        ("day", "days"),
        ("address", "addresses"),
        ("box", "boxes"),
        ("quiz", "quizes"),
        ("batch", "batches"),
        ("wish", "wishes"),
        ("order_line", "order_lines"),
        ("y", "ys"),
    ],
)
def test_pluralize(word: str, plural: str) -> None:
    assert pluralize(word) == plural


@pytest.mark.parametrize(
    ("name", "snake"),
    [("Product", "product"), ("OrderLine", "order_line"), ("HTTPRequest", "http_request")],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


def test_explicit_plural_wins() -> None:
    spec = parse_spec(
        "name: ab\nentities:\n  - {name: Person, plural: people, fields: [{name: n, type: date}]}"
    )
    assert spec.entities[0].table == "people"


def test_yaml_dates_and_numbers_are_accepted_as_defaults() -> None:
    spec = parse_spec(
        """\
name: ab
entities:
  - name: Thing
    fields:
      - {name: born_on, type: date, default: 2024-01-31}
      - {name: seen_at, type: datetime, default: 2024-01-31T10:00:00Z}
      - {name: seen_again_at, type: datetime, default: "2024-01-31T10:00:00+02:00"}
      - {name: amount, type: decimal, precision: 6, scale: 2, default: "1234.50"}
      - {name: rate, type: float, min: 0, max: 1, default: 0.5}
      - {name: extra, type: json, default: {a: [1, 2, null]}}
      - {name: code, type: uuid, default: 0b0c1f3a-61c6-4f5e-9d1a-3f8c2a1b4c5d}
      - {name: site, type: url, default: "https://example.com/x"}
      - {name: mail, type: email, default: a@example.com}
      - {name: parent_id, type: ref, to: Thing}
"""
    )
    fields = {f.name: f for f in spec.entities[0].fields}
    assert fields["born_on"].default == dt.date(2024, 1, 31)
    assert isinstance(fields["seen_at"].default, dt.datetime)
    assert fields["amount"].default == "1234.50"
    assert fields["extra"].default == {"a": [1, 2, None]}


def test_validate_spec_data_accepts_plain_data() -> None:
    data = {"name": "ab", "entities": [{"name": "A", "fields": [{"name": "b", "type": "integer"}]}]}
    spec = validate_spec_data(data)
    assert spec.entities[0].fields[0].type is FieldType.INTEGER


def test_copier_answers_wrapper_is_unwrapped() -> None:
    text = "spec:\n  name: ab\n  entities:\n    - {name: A, fields: [{name: b, type: text}]}\n"
    assert parse_spec(text).name == "ab"
    data = {
        "spec": {
            "name": "ab",
            "entities": [{"name": "A", "fields": [{"name": "b", "type": "url"}]}],
        }
    }
    assert validate_spec_data(data).name == "ab"


def test_constants() -> None:
    assert FIELD_TYPES == (
        "string",
        "text",
        "integer",
        "float",
        "decimal",
        "boolean",
        "uuid",
        "date",
        "datetime",
        "email",
        "url",
        "json",
        "enum",
        "ref",
    )
    assert OPERATIONS == ("create", "read", "list", "update", "delete")
    assert RESERVED_FIELD_NAMES == ("id", "created_at", "updated_at", "version")
    assert [t.value for t in FieldType] == list(FIELD_TYPES)


def test_public_api_names() -> None:
    for name in [
        "ServiceSpec",
        "EntitySpec",
        "FieldSpec",
        "FieldType",
        "SpecError",
        "SpecIssue",
        "load_spec",
        "parse_spec",
        "validate_spec_data",
        "spec_json_schema",
        "FIELD_TYPES",
        "OPERATIONS",
        "RESERVED_FIELD_NAMES",
    ]:
        assert name in spec_api.__all__
        assert hasattr(spec_api, name)
    assert callable(spec_json_schema)


def test_issue_format_and_error_text() -> None:
    issue = SpecIssue("spec.yaml", 12, 9, "entities[1].fields[3].type", "unknown field type")
    assert issue.format() == "spec.yaml:12:9: entities[1].fields[3].type: unknown field type"
    assert SpecIssue("s.yaml", None, None, "name", "bad").format() == "s.yaml: name: bad"
    assert SpecIssue("s.yaml", 1, 1, "", "empty").format() == "s.yaml:1:1: empty"
    error = SpecError([issue, SpecIssue("s.yaml", None, None, "", "x")])
    assert str(error) == issue.format() + "\ns.yaml: x"
    assert len(error.issues) == 2


def test_load_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "cannot read the spec" in info.value.issues[0].message
    assert info.value.issues[0].file.endswith("nope.yaml")


def test_load_spec_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: ab\ndescription: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    issue = info.value.issues[0]
    assert "not UTF-8" in issue.message
    assert (issue.line, issue.column) == (2, 17)


def test_load_spec_uses_the_path_as_file_name(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("name: ab\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.issues[0].file == str(path)
    assert str(info.value).startswith(f"{path}:1:1: entities: missing required key 'entities'")
