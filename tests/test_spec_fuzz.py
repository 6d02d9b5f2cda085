"""Property tests: whatever the input, validation raises only SpecError, with usable issues."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microforge.spec import (
    FIELD_TYPES,
    OPERATIONS,
    ServiceSpec,
    SpecError,
    parse_spec,
    validate_spec_data,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(
    [*ROOT.glob("blueprints/ecommerce/specs/*.yaml"), *ROOT.glob("tests/specs/*.yaml")]
)
SPECS: list[dict[str, Any]] = [yaml.safe_load(p.read_text(encoding="utf-8")) for p in SOURCES]
TEXTS: list[str] = [p.read_text(encoding="utf-8") for p in SOURCES]

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

WORDS = st.sampled_from(
    [
        *FIELD_TYPES,
        *OPERATIONS,
        "Product",
        "Category",
        "status",
        "ACTIVE",
        "public",
        "created",
        "updated",
        "deleted",
        "discontinue",
        "name",
        "spec",
        "class",
        "id",
        "",
        "order.OrderCreated",
        "user.User",
        "100/minute",
        "^[a-z]+$",
        "[",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.dates()
    | st.datetimes(min_value=dt.datetime(1, 1, 2))
    | WORDS
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | WORDS, inner, max_size=3)
    ),
    max_leaves=8,
)

Path_ = tuple[Any, ...]


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path to a value inside `node` (the document itself included)."""
    found: list[Path_] = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _get(node: Any, path: Path_) -> Any:
    for element in path:
        node = node[element]
    return node


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    paths = _paths(data)
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["delete", "replace", "rename", "duplicate", "insert", "wrap"]))
    if not path:
        return draw(VALUES) if action == "replace" else data
    parent, last = _get(data, path[:-1]), path[-1]
    if action == "delete":
        del parent[last]
    elif action == "replace":
        parent[last] = draw(VALUES)
    elif action == "rename" and isinstance(parent, dict):
        new_key = draw(st.text(max_size=10) | WORDS)
        parent[new_key] = parent.pop(last)
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(parent[last]))
    elif action == "insert" and isinstance(parent, dict):
        parent[draw(st.text(max_size=10) | WORDS)] = draw(VALUES)
    elif action == "wrap":
        parent[last] = draw(st.sampled_from([[parent[last]], {"x": parent[last]}]))
    return data


@st.composite
def mutated_specs(draw: st.DrawFn) -> Any:
    data = copy.deepcopy(draw(st.sampled_from(SPECS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        data = _mutate(data, draw)
    return data


def _check_error(error: SpecError) -> None:
    assert error.issues
    for issue in error.issues:
        assert issue.message.strip()
        assert "internal error" not in issue.message, issue.format()
        assert isinstance(issue.path, str)
        assert issue.line is None or issue.line >= 1
        assert issue.column is None or issue.column >= 1
        assert issue.format()
    assert str(error)


def _run(function: Any, *args: Any) -> None:
    try:
        result = function(*args)
    except SpecError as error:
        _check_error(error)
    else:
        assert isinstance(result, ServiceSpec)


@FUZZ
@given(mutated_specs())
def test_mutated_spec_text(data: Any) -> None:
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    _run(parse_spec, text, "spec.yaml")


@FUZZ
@given(mutated_specs())
def test_mutated_spec_data(data: Any) -> None:
    _run(validate_spec_data, data, "answers.yml")


@FUZZ
@given(st.sampled_from(TEXTS), st.data())
def test_mutated_spec_characters(text: str, data: st.DataObject) -> None:
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        start = data.draw(st.integers(min_value=0, max_value=len(text)))
        end = data.draw(st.integers(min_value=start, max_value=min(len(text), start + 20)))
        insert = data.draw(st.text(max_size=8) | st.sampled_from(["\n", "\t", ":", "- ", "{", "'"]))
        text = text[:start] + insert + text[end:]
    _run(parse_spec, text, "spec.yaml")


@FUZZ
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _run(parse_spec, text, "spec.yaml")


@FUZZ
@given(VALUES)
def test_random_data(data: Any) -> None:
    _run(validate_spec_data, data)


def test_unmutated_examples_are_valid() -> None:
    for data in SPECS:
        assert isinstance(validate_spec_data(data), ServiceSpec)
