"""One bad spec per rule: each asserts the issue's path, a message fragment and its exact position.

In each YAML snippet, « marks the exact place (line and column) the issue must point at; the
marker is removed before parsing.
"""

from __future__ import annotations

from textwrap import dedent

import pytest

from microforge.spec import SpecError, SpecIssue, parse_spec, validate_spec_data

MARK = "«"


def _marked(text: str) -> tuple[str, int, int]:
    text = dedent(text)
    index = text.index(MARK)
    before = text[:index]
    line = before.count("\n") + 1
    column = index - (before.rfind("\n") + 1) + 1
    return text.replace(MARK, "", 1), line, column


def _issues(text: str) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml")
    assert info.value.issues
    return info.value.issues


def check(text: str, path: str, fragment: str) -> SpecIssue:
    clean, line, column = _marked(text)
    issues = _issues(clean)
    listing = "\n".join(issue.format() for issue in issues)
    matches = [issue for issue in issues if issue.path == path and fragment in issue.message]
    assert matches, f"no issue at {path!r} containing {fragment!r} in:\n{listing}"
    issue = matches[0]
    assert (issue.line, issue.column) == (line, column), listing
    assert issue.file == "spec.yaml"
    return issue


# (id, yaml with «, path, message fragment)
CASES: list[tuple[str, str, str, str]] = [
    # 1. YAML itself
    (
        "yaml-syntax",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}
          «- name: Other
        """,
        "",
        "invalid YAML: expected ',' or ']', but got '-' (while parsing a flow sequence)",
    ),
    (
        "yaml-tab",
        "name: shop\n«\tentities: []\n",
        "",
        "invalid YAML: found character '\\t' that cannot start any token",
    ),
    (
        "yaml-syntax-mapping-values",
        """\
        name: shop
        description: a«: b
        """,
        "",
        "invalid YAML: mapping values are not allowed here",
    ),
    ("empty-file", "«", "", "the spec is empty; expected a mapping with at least 'name'"),
    ("only-comments", "«# nothing here\n# still nothing\n", "", "the spec is empty"),
    ("top-level-list", "«- name: shop\n- entities: []\n", "", "must be a mapping"),
    ("top-level-scalar", "# c\n«just text\n", "", "got the text 'just text'"),
    (
        "duplicate-key",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        «name: other
        """,
        "name",
        "duplicate key 'name'; it is already defined at line 1",
    ),
    (
        "duplicate-key-nested",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - name: sku
                type: string
                «type: text
        """,
        "entities[0].fields[0].type",
        "duplicate key 'type'",
    ),
    (
        "invalid-timestamp",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: d, type: date, default: «2024-13-45}]
        """,
        "",
        "invalid date or timestamp '2024-13-45'",
    ),
    # 2. keys and value types
    (
        "unknown-key",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - {name: sku, type: string, «requried: true}
        """,
        "entities[0].fields[0].requried",
        "unknown key 'requried'; allowed: name, type, description, required, unique, index, "
        "default, min, max, max_length, pattern, precision, scale, values, to, references; "
        "did you mean 'required'?",
    ),
    (
        "unknown-top-level-key",
        """\
        name: shop
        «entites: []
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        """,
        "entites",
        "did you mean 'entities'?",
    ),
    (
        "unknown-transition-key",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            states:
              field: status
              transitions:
                - {name: go, «form: [A], from: [A], to: B}
        """,
        "entities[0].states.transitions[0].form",
        "allowed: name, from, to; did you mean 'from'?",
    ),
    (
        "wrong-type-boolean",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - name: sku
                type: string
                required: «yes please
        """,
        "entities[0].fields[0].required",
        "expected a boolean, got 'yes please'",
    ),
    (
        "wrong-type-integer",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string, max_length: «"64"}]
        """,
        "entities[0].fields[0].max_length",
        "expected an integer, got '64'",
    ),
    (
        "wrong-type-list",
        """\
        name: shop
        entities:
          - name: Product
            fields: «sku
        """,
        "entities[0].fields",
        "expected a list, got 'sku'",
    ),
    (
        "empty-value",
        """\
        name: shop
        entities:
          - name: Product
            «fields:
            operations: [read]
        """,
        "entities[0].fields",
        "expected a list, got null",
    ),
    (
        "wrong-type-mapping",
        """\
        name: shop
        entities:
          - «Product
        """,
        "entities[0]",
        "expected a mapping, got 'Product'",
    ),
    (
        "missing-key-points-at-mapping",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - «{name: sku}
        """,
        "entities[0].fields[0].type",
        "missing required key 'type'; required here: name, type",
    ),
    (
        "missing-key-block-mapping",
        """\
        name: shop
        entities:
          - «name: Product
            operations: [read]
        """,
        "entities[0].fields",
        "missing required key 'fields'",
    ),
    (
        "missing-top-level-key",
        """\
        «name: shop
        description: nothing else
        """,
        "entities",
        "missing required key 'entities'; required here: name, entities",
    ),
    (
        "no-entities",
        """\
        name: shop
        entities: «[]
        """,
        "entities",
        "must not be empty; a service needs at least one entity",
    ),
    # 3. names
    (
        "service-name",
        """\
        name: «Shop_1
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        """,
        "name",
        "invalid service name 'Shop_1'; expected 2 to 31 lowercase letters",
    ),
    (
        "entity-name-pascal-case",
        """\
        name: shop
        entities:
          - name: «product_item
            fields: [{name: sku, type: string}]
        """,
        "entities[0].name",
        "invalid entity name 'product_item'; expected PascalCase",
    ),
    (
        "entity-name-too-long",
        """\
        name: shop
        entities:
          - name: «WarehouseAllocationPlanningLineItemEntry
            fields: [{name: sku, type: string}]
        """,
        "entities[0].name",
        "entity name 'WarehouseAllocationPlanningLineItemEntry' is too long: 40 characters, at "
        "most 38",
    ),
    (
        "entity-name-too-long-in-snake-case",
        """\
        name: shop
        entities:
          - name: «WarehouseAllocationPlanningLineItem
            fields: [{name: sku, type: string}]
        """,
        "entities[0].name",
        "its snake_case form 'warehouse_allocation_planning_line_item' (module and table name) "
        "has 39 characters, at most 38 are allowed",
    ),
    (
        "field-name-too-long",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «the_number_of_items_reserved_for_the_open_orders_x, type: integer}]
        """,
        "entities[0].fields[0].name",
        "is too long: 50 characters, at most 48 are allowed",
    ),
    (
        "handler-name-too-long",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        events:
          consumes:
            - event: order.OrderCreated
              handler: «reserve_the_stock_for_the_order_lines_of_the_order
        """,
        "events.consumes[0].handler",
        "handler name 'reserve_the_stock_for_the_order_lines...' is too long: 50 characters, "
        "at most 48",
    ),
    (
        "service-name-too-long",
        """\
        name: «warehouse-allocation-planning-xy
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        """,
        "name",
        "service name 'warehouse-allocation-planning-xy' is too long: 32 characters, at most 31",
    ),
    (
        "entity-name-duplicate",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
          - name: «Product
            fields: [{name: sku, type: string}]
        """,
        "entities[1].name",
        "duplicate entity name 'Product'",
    ),
    (
        "entity-name-same-snake-case",
        """\
        name: shop
        entities:
          - name: Order
            fields: [{name: sku, type: string}]
          - name: «ORDER
            fields: [{name: sku, type: string}]
        """,
        "entities[1].name",
        "becomes 'order' in snake_case, like entities[0] ('Order')",
    ),
    (
        "entity-table-name-duplicate",
        """\
        name: shop
        entities:
          - name: Item
            fields: [{name: sku, type: string}]
          - name: Article
            plural: «items
            fields: [{name: sku, type: string}]
        """,
        "entities[1].plural",
        "table name 'items' (the plural of 'Article') is already used by entities[0] ('Item')",
    ),
    (
        "entity-name-keyword",
        """\
        name: shop
        entities:
          - name: «Class
            fields: [{name: sku, type: string}]
        """,
        "entities[0].name",
        "becomes the Python keyword 'class'",
    ),
    (
        "entity-name-stdlib",
        """\
        name: shop
        entities:
          - name: «Email
            fields: [{name: sku, type: string}]
        """,
        "entities[0].name",
        "would shadow the stdlib module 'email'",
    ),
    (
        "field-name-snake-case",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «Sku, type: string}]
        """,
        "entities[0].fields[0].name",
        "invalid field name 'Sku'; expected a snake_case identifier",
    ),
    (
        "field-name-duplicate",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - {name: sku, type: string}
              - {name: «sku, type: text}
        """,
        "entities[0].fields[1].name",
        "duplicate field name 'sku'",
    ),
    (
        "field-name-keyword",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «class, type: string}]
        """,
        "entities[0].fields[0].name",
        "field name 'class' is a Python keyword",
    ),
    (
        "field-name-reserved-column",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - name: «created_at
                type: datetime
        """,
        "entities[0].fields[0].name",
        "is added to every entity automatically",
    ),
    (
        "field-name-stdlib-module",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «datetime, type: datetime}]
        """,
        "entities[0].fields[0].name",
        "would shadow the stdlib module 'datetime'",
    ),
    (
        "field-name-builtin",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «type, type: string}]
        """,
        "entities[0].fields[0].name",
        "would shadow the builtin type 'type'",
    ),
    (
        "field-name-orm",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «metadata, type: json}]
        """,
        "entities[0].fields[0].name",
        "reserved by SQLAlchemy/pydantic",
    ),
    (
        "field-name-model-prefix",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «model_name, type: string}]
        """,
        "entities[0].fields[0].name",
        "reserved by SQLAlchemy/pydantic",
    ),
    (
        "field-name-query-parameter",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: «cursor, type: string}]
        """,
        "entities[0].fields[0].name",
        "clashes with the list query parameter 'cursor'",
    ),
    (
        "transition-name-keyword",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            states:
              field: status
              transitions: [{name: «pass, from: [A], to: B}]
        """,
        "entities[0].states.transitions[0].name",
        "transition name 'pass' is a Python keyword",
    ),
    (
        "transition-name-operation",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            states:
              field: status
              transitions: [{name: «delete, from: [A], to: B}]
        """,
        "entities[0].states.transitions[0].name",
        "transition name 'delete' is an operation name",
    ),
    (
        "transition-name-duplicate",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            states:
              field: status
              transitions:
                - {name: flip, from: [A], to: B}
                - {name: «flip, from: [B], to: A}
        """,
        "entities[0].states.transitions[1].name",
        "duplicate transition name 'flip'",
    ),
    (
        "transition-name-pattern",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            states:
              field: status
              transitions: [{name: «Flip, from: [A], to: B}]
        """,
        "entities[0].states.transitions[0].name",
        "invalid transition name 'Flip'",
    ),
    (
        "handler-name-keyword",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        events:
          consumes: [{event: order.OrderCreated, handler: «import}]
        """,
        "events.consumes[0].handler",
        "handler name 'import' is a Python keyword",
    ),
    # 4. types and applicable constraints
    (
        "unknown-type",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: «strng}]
        """,
        "entities[0].fields[0].type",
        "unknown field type 'strng'; allowed: string, text, integer, float, decimal, boolean, "
        "uuid, date, datetime, email, url, json, enum, ref; did you mean 'string'?",
    ),
    (
        "max-length-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: stock, type: integer, «max_length: 3}]
        """,
        "entities[0].fields[0].max_length",
        "'max_length' does not apply to type 'integer'; it applies only to: string, text",
    ),
    (
        "pattern-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: born, type: date, «pattern: "^x$"}]
        """,
        "entities[0].fields[0].pattern",
        "it applies only to: string, text",
    ),
    (
        "min-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string, «min: 1}]
        """,
        "entities[0].fields[0].min",
        "'min' does not apply to type 'string'; it applies only to: integer, float, decimal",
    ),
    (
        "precision-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: n, type: float, «precision: 5}]
        """,
        "entities[0].fields[0].precision",
        "it applies only to: decimal",
    ),
    (
        "values-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: n, type: string, «values: [A]}]
        """,
        "entities[0].fields[0].values",
        "it applies only to: enum",
    ),
    (
        "to-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: n, type: uuid, «to: Product}]
        """,
        "entities[0].fields[0].to",
        "it applies only to: ref",
    ),
    (
        "references-not-applicable",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: n, type: string, «references: user.User}]
        """,
        "entities[0].fields[0].references",
        "it applies only to: uuid",
    ),
    (
        "references-format",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: owner_id, type: uuid, references: «User}]
        """,
        "entities[0].fields[0].references",
        "invalid reference 'User'; expected '<service>.<Name>'",
    ),
    (
        "enum-needs-values",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - «{name: status, type: enum}
        """,
        "entities[0].fields[0].values",
        "an enum field needs 'values'",
    ),
    (
        "enum-values-empty",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: «[]}]
        """,
        "entities[0].fields[0].values",
        "must not be empty; an enum field needs at least one value",
    ),
    (
        "enum-values-unique",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B, «A]}]
        """,
        "entities[0].fields[0].values[2]",
        "duplicate enum value 'A'",
    ),
    (
        "enum-values-identifier",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: size, type: enum, values: [S, «2XL]}]
        """,
        "entities[0].fields[0].values[1]",
        "invalid enum value '2XL'; expected an identifier",
    ),
    (
        "enum-values-keyword",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: size, type: enum, values: [S, «None]}]
        """,
        "entities[0].fields[0].values[1]",
        "enum value 'None' is a Python keyword",
    ),
    (
        "ref-needs-to",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - «name: parent_id
                type: ref
        """,
        "entities[0].fields[0].to",
        "a ref field needs 'to': the name of an entity of this service (Product)",
    ),
    (
        "ref-unknown-entity",
        """\
        name: shop
        entities:
          - name: Category
            plural: categories
            fields: [{name: title, type: string}]
          - name: Product
            fields: [{name: category_id, type: ref, to: «Categry}]
        """,
        "entities[1].fields[0].to",
        "unknown entity 'Categry'; 'to' must name an entity of this service: Category, Product; "
        "did you mean 'Category'?",
    ),
    (
        "default-on-ref",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: parent_id, type: ref, to: Product, «default: x}]
        """,
        "entities[0].fields[0].default",
        "'default' is not allowed on a ref field",
    ),
    (
        "unique-on-text",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: notes, type: text, unique: «true}]
        """,
        "entities[0].fields[0].unique",
        "'unique' is not allowed on type 'text'",
    ),
    (
        "unique-on-json",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: attrs, type: json, unique: «true}]
        """,
        "entities[0].fields[0].unique",
        "'unique' is not allowed on type 'json'",
    ),
    (
        "index-on-json",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: attrs, type: json, index: «true}]
        """,
        "entities[0].fields[0].index",
        "'index' is not allowed on type 'json'",
    ),
    # 5. constraint values and defaults
    (
        "min-greater-than-max",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: stock, type: integer, min: 10, max: «5}]
        """,
        "entities[0].fields[0].max",
        "max (5) is less than min (10)",
    ),
    (
        "max-length-at-least-one",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string, max_length: «0}]
        """,
        "entities[0].fields[0].max_length",
        "must be at least 1, got 0",
    ),
    (
        "scale-greater-than-precision",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: price, type: decimal, precision: 4, scale: «6}]
        """,
        "entities[0].fields[0].scale",
        "scale (6) is greater than precision (4)",
    ),
    (
        "precision-range",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: price, type: decimal, precision: «39}]
        """,
        "entities[0].fields[0].precision",
        "must be at most 38, got 39",
    ),
    (
        "pattern-compiles",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string, pattern: «"[A-Z"}]
        """,
        "entities[0].fields[0].pattern",
        "invalid regular expression: unterminated character set",
    ),
    (
        "min-not-a-number",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: stock, type: integer, min: «true}]
        """,
        "entities[0].fields[0].min",
        "expected a number, got true",
    ),
    (
        "default-integer-type",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: stock, type: integer, default: «"3"}]
        """,
        "entities[0].fields[0].default",
        "expected an integer default, got '3'",
    ),
    (
        "default-integer-not-bool",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: stock, type: integer, default: «true}]
        """,
        "entities[0].fields[0].default",
        "expected an integer default, got true",
    ),
    (
        "default-below-min",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: stock, type: integer, min: 0, default: «-1}]
        """,
        "entities[0].fields[0].default",
        "default -1 is below min 0",
    ),
    (
        "default-float",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: ratio, type: float, default: «high}]
        """,
        "entities[0].fields[0].default",
        "expected a number as default, got 'high'",
    ),
    (
        "default-decimal-text",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: price, type: decimal, default: «"ten"}]
        """,
        "entities[0].fields[0].default",
        "expected a number or a numeric string for a decimal default, got 'ten'",
    ),
    (
        "default-decimal-scale",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: price, type: decimal, precision: 6, scale: 2, default: «"1.234"}]
        """,
        "entities[0].fields[0].default",
        "has 3 decimal places; scale allows 2",
    ),
    (
        "default-decimal-precision",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: price, type: decimal, precision: 4, scale: 2, default: «123.5}]
        """,
        "entities[0].fields[0].default",
        "does not fit precision 4 and scale 2",
    ),
    (
        "default-boolean",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: active, type: boolean, default: «"yes"}]
        """,
        "entities[0].fields[0].default",
        "expected a boolean default (true or false), got 'yes'",
    ),
    (
        "default-uuid",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: code, type: uuid, default: «not-a-uuid}]
        """,
        "entities[0].fields[0].default",
        "expected a UUID string as default",
    ),
    (
        "default-date",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: born, type: date, default: «"31/01/2024"}]
        """,
        "entities[0].fields[0].default",
        "expected an ISO 8601 date (YYYY-MM-DD) as default",
    ),
    (
        "default-datetime",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: seen_at, type: datetime, default: «yesterday}]
        """,
        "entities[0].fields[0].default",
        "expected an ISO 8601 date-time",
    ),
    (
        "default-email",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: contact, type: email, default: «nobody}]
        """,
        "entities[0].fields[0].default",
        "expected an email address as default",
    ),
    (
        "default-url",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: homepage, type: url, default: «"example.com"}]
        """,
        "entities[0].fields[0].default",
        "expected an http(s) URL as default",
    ),
    (
        "default-string-too-long",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string, max_length: 3, default: «ABCD}]
        """,
        "entities[0].fields[0].default",
        "default is 4 characters long; max_length is 3",
    ),
    (
        "default-string-pattern",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string, pattern: "^[A-Z]+$", default: «abc}]
        """,
        "entities[0].fields[0].default",
        "does not match the pattern",
    ),
    (
        "default-enum",
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - {name: status, type: enum, values: [ACTIVE, RETIRED], default: «ACTIV}
        """,
        "entities[0].fields[0].default",
        "default 'ACTIV' is not one of the enum values: ACTIVE, RETIRED; did you mean 'ACTIVE'?",
    ),
    (
        "default-json",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: extra, type: json, default: «2024-01-01}]
        """,
        "entities[0].fields[0].default",
        "a json default must be plain JSON data",
    ),
    # 6. refs
    (
        "required-self-ref",
        """\
        name: shop
        entities:
          - name: Category
            plural: categories
            fields:
              - {name: parent_id, type: ref, to: Category, required: «true}
        """,
        "entities[0].fields[0].required",
        "required ref of 'Category' to itself; no row could ever be created first",
    ),
    (
        "required-ref-cycle",
        """\
        name: shop
        entities:
          - name: Order
            fields:
              - {name: invoice_id, type: ref, to: Invoice, required: «true}
          - name: Invoice
            fields:
              - {name: order_id, type: ref, to: Order, required: true}
        """,
        "entities[0].fields[0].required",
        "required refs form a cycle (Order.invoice_id -> Invoice, Invoice.order_id -> Order); "
        "no row could ever be created first",
    ),
    # 7. states
    (
        "states-field-unknown",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            states:
              field: «stauts
              transitions: [{name: go, from: [A], to: B}]
        """,
        "entities[0].states.field",
        "unknown field 'stauts'; 'states.field' must name an enum field of this entity (its enum "
        "fields: status); did you mean 'status'?",
    ),
    (
        "states-field-not-enum",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: string}]
            states:
              field: «status
              transitions: [{name: go, from: [A], to: B}]
        """,
        "entities[0].states.field",
        "field 'status' is of type 'string'; 'states.field' must name an enum field",
    ),
    (
        "states-from-unknown-value",
        """\
        name: shop
        entities:
          - name: Order
            fields: [{name: status, type: enum, values: [PENDING, PAID]}]
            states:
              field: status
              transitions: [{name: pay, from: [«PENDNG], to: PAID}]
        """,
        "entities[0].states.transitions[0].from[0]",
        "unknown state 'PENDNG'; the states are the values of the enum field 'status': "
        "PENDING, PAID; did you mean 'PENDING'?",
    ),
    (
        "states-to-unknown-value",
        """\
        name: shop
        entities:
          - name: Order
            fields: [{name: status, type: enum, values: [PENDING, PAID]}]
            states:
              field: status
              transitions: [{name: pay, from: [PENDING], to: «PAYED}]
        """,
        "entities[0].states.transitions[0].to",
        "unknown state 'PAYED'",
    ),
    (
        "states-from-empty",
        """\
        name: shop
        entities:
          - name: Order
            fields: [{name: status, type: enum, values: [PENDING, PAID]}]
            states:
              field: status
              transitions: [{name: pay, from: «[], to: PAID}]
        """,
        "entities[0].states.transitions[0].from",
        "must not be empty; a transition starts from at least one state",
    ),
    # 8. operations, permissions, events
    (
        "operation-unknown",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            operations: [create, «reed]
        """,
        "entities[0].operations[1]",
        "unknown operation 'reed'; allowed: create, read, list, update, delete; "
        "did you mean 'read'?",
    ),
    (
        "operation-duplicate",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            operations: [read, list, «read]
        """,
        "entities[0].operations[2]",
        "duplicate operation 'read'",
    ),
    (
        "permission-for-missing-operation",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            operations: [read, list]
            permissions: {read: public, «delete: product:admin}
        """,
        "entities[0].permissions.delete",
        "permission for the operation 'delete', which this entity does not offer",
    ),
    (
        "permission-unknown-key",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: status, type: enum, values: [A, B]}]
            permissions:
              «retrie: product:write
            states:
              field: status
              transitions: [{name: retire, from: [A], to: B}]
        """,
        "entities[0].permissions.retrie",
        "unknown permission key 'retrie'; allowed: the entity's operations and transitions: "
        "create, read, list, update, delete, retire; did you mean 'retire'?",
    ),
    (
        "permission-scope-format",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            permissions: {create: «Product Write}
        """,
        "entities[0].permissions.create",
        "invalid scope 'Product Write'; expected 'public' or a scope",
    ),
    (
        "event-unknown",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            events: [created, «removed]
        """,
        "entities[0].events[1]",
        "unknown event 'removed'; allowed: created, updated, deleted",
    ),
    (
        "event-needs-operation",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            operations: [create, read]
            events: [created, «deleted]
        """,
        "entities[0].events[1]",
        "event 'deleted' needs the 'delete' operation",
    ),
    (
        "event-duplicate",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
            events: [created, «created]
        """,
        "entities[0].events[1]",
        "duplicate event 'created'",
    ),
    # 9. service-level sections
    (
        "consumed-event-format",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        events:
          consumes:
            - {event: «OrderCreated, handler: on_order}
        """,
        "events.consumes[0].event",
        "invalid event 'OrderCreated'; expected '<service>.<Name>'",
    ),
    (
        "handler-duplicate",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        events:
          consumes:
            - {event: order.OrderCreated, handler: on_order}
            - {event: order.OrderCancelled, handler: «on_order}
        """,
        "events.consumes[1].handler",
        "duplicate handler 'on_order'",
    ),
    (
        "depends-on-entity-pascal-case",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        depends_on:
          - {service: catalog, entity: «product}
        """,
        "depends_on[0].entity",
        "invalid entity name 'product'; expected PascalCase",
    ),
    (
        "depends-on-self",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        depends_on:
          - {service: «shop, entity: Product}
        """,
        "depends_on[0].service",
        "a service cannot depend on itself ('shop')",
    ),
    (
        "depends-on-operation",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        depends_on:
          - {service: catalog, entity: Product, operations: [read, «Get]}
        """,
        "depends_on[0].operations[1]",
        "invalid operation 'Get'; expected a snake_case identifier",
    ),
    (
        "depends-on-plural",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        depends_on:
          - {service: crm, entity: Person, plural: «People}
        """,
        "depends_on[0].plural",
        "invalid plural name 'People'; expected a snake_case identifier",
    ),
    (
        "rate-limit-format",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        rate_limit: {default: «100/min}
        """,
        "rate_limit.default",
        "invalid rate limit '100/min'; expected '<N>/<second|minute|hour|day>'",
    ),
    (
        "rate-limit-missing-default",
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        rate_limit: «{}
        """,
        "rate_limit.default",
        "missing required key 'default'",
    ),
]


@pytest.mark.parametrize(
    ("text", "path", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule(text: str, path: str, fragment: str) -> None:
    check(text, path, fragment)


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_event_updated_allowed_through_transitions() -> None:
    spec = parse_spec(
        dedent(
            """\
            name: shop
            entities:
              - name: Order
                fields: [{name: status, type: enum, values: [A, B]}]
                operations: [create, read]
                permissions: {create: order:write, pay: order:pay}
                states:
                  field: status
                  transitions: [{name: pay, from: [A], to: B}]
                events: [created, updated, pay]
            """
        )
    )
    assert spec.entities[0].events == ["created", "updated", "pay"]


def test_a_dependency_names_the_plural_its_provider_set() -> None:
    text = dedent(
        """\
        name: shop
        entities:
          - name: Product
            fields: [{name: sku, type: string}]
        depends_on:
          - {service: crm, entity: Person, plural: people}
          - {service: crm, entity: Address}
        """
    )
    first, second = parse_spec(text).depends_on
    assert (first.plural, second.plural) == ("people", None)


def test_optional_self_ref_is_fine() -> None:
    text = "name: shop\nentities:\n  - {name: Node, fields: [{name: up_id, type: ref, to: Node}]}\n"
    assert parse_spec(text).entities[0].fields[0].to == "Node"


def test_required_ref_without_cycle_is_fine() -> None:
    text = dedent(
        """\
        name: shop
        entities:
          - name: Customer
            fields: [{name: email, type: email}]
          - name: Order
            fields: [{name: customer_id, type: ref, to: Customer, required: true}]
        """
    )
    assert parse_spec(text).entities[1].fields[0].required is True


def test_wrapped_spec_paths_are_relative_and_positions_right() -> None:
    clean, line, column = _marked(
        """\
        # a Copier data file
        spec:
          name: shop
          entities:
            - name: Product
              fields: [{name: sku, type: «strng}]
        """
    )
    issues = _issues(clean)
    assert [(i.path, i.line, i.column) for i in issues] == [
        ("entities[0].fields[0].type", line, column)
    ]


def test_wrapped_spec_duplicate_key_path_is_relative() -> None:
    text = "spec:\n  name: ab\n  name: cd\n  entities: [{name: A, fields: [{name: b, type: url}]}]"
    issues = _issues(text)
    assert [(i.path, i.line, i.column) for i in issues] == [("name", 3, 3)]


def test_validate_spec_data_has_paths_but_no_positions() -> None:
    data = {
        "name": "shop",
        "entities": [{"name": "Product", "fields": [{"name": "sku", "type": "strng"}]}],
    }
    with pytest.raises(SpecError) as info:
        validate_spec_data(data, "answers.yml")
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.column) == ("answers.yml", None, None)
    assert issue.path == "entities[0].fields[0].type"
    assert issue.format().startswith("answers.yml: entities[0].fields[0].type: unknown field type")


@pytest.mark.parametrize("data", [None, [], "text", 3, {"spec": None}, {1: 2}])
def test_validate_spec_data_odd_inputs(data: object) -> None:
    with pytest.raises(SpecError) as info:
        validate_spec_data(data)
    assert all(issue.message for issue in info.value.issues)


def test_validate_spec_data_recursive_data() -> None:
    data: dict[str, object] = {"name": "shop"}
    data["entities"] = [data]
    with pytest.raises(SpecError) as info:
        validate_spec_data(data)
    assert "recursive" in info.value.issues[0].message


def test_recursive_yaml_alias() -> None:
    issues = _issues("name: shop\nentities: &e [*e]\n")
    assert issues
    assert all(issue.message for issue in issues)


def test_all_issues_at_once() -> None:
    text = dedent(
        """\
        name: Shop
        entities:
          - name: Product
            fields:
              - {name: sku, type: strng}
              - {name: stock, type: integer, min: 5, max: 1}
              - {name: status, type: enum, values: [A, B], requried: true}
            operations: [read, reed]
          - name: Category
            plural: categories
            fields:
              - {name: parent_id, type: ref, to: Category, required: true}
        """
    )
    issues = _issues(text)
    assert [(i.line, i.column, i.path) for i in issues] == [
        (1, 7, "name"),
        (5, 27, "entities[0].fields[0].type"),
        (6, 51, "entities[0].fields[1].max"),
        (7, 52, "entities[0].fields[2].requried"),
        (8, 24, "entities[0].operations[1]"),
        (12, 62, "entities[1].fields[0].required"),
    ]
    assert len(issues) == 6


def test_five_distinct_mistakes_give_five_issues() -> None:
    text = dedent(
        """\
        name: shop
        entities:
          - name: Product
            fields:
              - {name: sku, type: strng}
              - {name: class, type: integer}
              - {name: status, type: enum, values: [A, B], default: C}
            events: [creatd]
        rate_limit: {default: lots}
        """
    )
    issues = _issues(text)
    assert len(issues) == 5, "\n".join(i.format() for i in issues)
    assert [i.line for i in issues] == [5, 6, 7, 8, 9]
