"""Structural validation: run the pydantic model and turn each of its errors into a `Finding`
with a spec path and a message that says what is wrong and what is allowed. The wording is a
`Vocabulary`; the blueprint format has its own (blueprint/structure.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import Finding, Path, PathElement
from .model import FIELD_TYPES, MODEL_AT, OPERATIONS, ServiceSpec, keys_of, required_keys_of
from .naming import (
    DURATION_PATTERN,
    ENTITY_NAME_PATTERN,
    ENUM_VALUE_PATTERN,
    IDENTIFIER_PATTERN,
    MAX_ENTITY_NAME,
    MAX_IDENTIFIER,
    MAX_REMOTE_NAME,
    MAX_SERVICE_NAME,
    RATE_LIMIT_PATTERN,
    REMOTE_ENTITY_PATTERN,
    SCOPE_PATTERN,
    SERVICE_NAME_PATTERN,
    STEP_OPERATION_PATTERN,
    too_long,
)
from .suggest import allowed, describe, suggestion

M = TypeVar("M", bound=BaseModel)

# What a value is called, by path shape (path without list indices).
_NOUNS: dict[tuple[str, ...], str] = {
    ("name",): "service name",
    ("entities", "name"): "entity name",
    ("entities", "plural"): "plural name",
    ("depends_on", "plural"): "plural name",
    ("entities", "fields", "name"): "field name",
    ("entities", "fields", "type"): "field type",
    ("entities", "fields", "values"): "enum value",
    ("entities", "fields", "to"): "entity name",
    ("entities", "fields", "references"): "reference",
    ("entities", "operations"): "operation",
    ("entities", "states", "field"): "field name",
    ("entities", "states", "transitions", "name"): "transition name",
    ("entities", "states", "transitions", "from"): "state",
    ("entities", "states", "transitions", "to"): "state",
    ("entities", "events"): "event",
    ("events", "consumes", "event"): "event",
    ("events", "consumes", "handler"): "handler name",
    ("depends_on", "service"): "service name",
    ("depends_on", "entity"): "entity name",
    ("depends_on", "operations"): "operation",
    ("rate_limit", "default"): "rate limit",
    ("entities", "owner"): "field name",
    ("entities", "owner_bypass"): "scope",
    ("sagas", "name"): "saga name",
    ("sagas", "entity"): "entity name",
    ("sagas", "start"): "start",
    ("sagas", "succeed"): "transition name",
    ("sagas", "fail"): "transition name",
    ("sagas", "steps", "name"): "step name",
    ("sagas", "steps", "do"): "step operation",
    ("sagas", "steps", "undo"): "step operation",
    ("sagas", "steps", "target"): "step name",
    ("sagas", "steps", "timeout"): "duration",
    ("sagas", "steps", "deadline"): "duration",
    ("entities", "cache", "ttl"): "duration",
}

_PATTERN_HELP: dict[str, str] = {
    SERVICE_NAME_PATTERN: f"2 to {MAX_SERVICE_NAME} lowercase letters, digits or '-', starting "
    "with a letter, e.g. 'inventory'",
    ENTITY_NAME_PATTERN: "PascalCase: an uppercase letter, then letters and digits (at most "
    f"{MAX_ENTITY_NAME} characters), e.g. 'OrderLine'",
    IDENTIFIER_PATTERN: "a snake_case identifier: a lowercase letter, then lowercase letters, "
    f"digits or '_' (at most {MAX_IDENTIFIER} characters), e.g. 'unit_price'",
    ENUM_VALUE_PATTERN: "an identifier: a letter, then letters, digits or '_' (at most "
    f"{MAX_IDENTIFIER} characters), e.g. 'ACTIVE'",
    SCOPE_PATTERN: "'public' or a scope of lowercase letters, digits and '_.:-' starting with a "
    "letter, e.g. 'product:write'",
    REMOTE_ENTITY_PATTERN: "'<service>.<Name>': a service name, a dot and a PascalCase name (at "
    f"most {MAX_REMOTE_NAME} characters), e.g. 'user.User'",
    RATE_LIMIT_PATTERN: "'<N>/<second|minute|hour|day>' with N >= 1, e.g. '100/minute'",
    DURATION_PATTERN: "a positive whole number and a unit (ms, s, m, h), e.g. '10s' or '2m'",
    STEP_OPERATION_PATTERN: "'<service>.<Entity>.<operation>', e.g. 'inventory.Reservation.create'",
}

_EXPECTED: dict[str, str] = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "a boolean",
    "float_type": "a number",
    "number_type": "a number",
    "finite_number": "a finite number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}

_NON_EMPTY_HINT: dict[tuple[str, ...], str] = {
    ("entities",): "a service needs at least one entity",
    ("entities", "fields"): "an entity needs at least one field",
    ("entities", "fields", "values"): "an enum field needs at least one value",
    ("entities", "states", "transitions"): "a state machine needs at least one transition",
    ("entities", "states", "transitions", "from"): "a transition starts from at least one state",
    ("depends_on", "operations"): "a dependency calls at least one operation",
    ("sagas", "steps"): "a saga needs at least one step",
}


def shape(path: Path) -> tuple[str, ...]:
    """The path without list indices: ``entities[1].fields[0].type`` -> entities.fields.type."""
    return tuple(element for element in path if isinstance(element, str))


def _noun(path: Path) -> str:
    key = shape(path)
    if key[:2] == ("entities", "permissions") and len(key) == 3:
        return "scope"
    return _NOUNS.get(key, "value")


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _options(path: Path) -> tuple[str, ...]:
    key = shape(path)
    if key == ("entities", "fields", "type"):
        return FIELD_TYPES
    return OPERATIONS


@dataclass(frozen=True)
class Vocabulary:
    """How a format's structural errors are worded: what a value is called and which values are
    allowed at a path, the model at a path shape (for its keys), what a pattern means, why a
    list must not be empty. The spec and the blueprint formats each have one."""

    noun: Callable[[Path], str]
    options: Callable[[Path], tuple[str, ...]]
    model_at: Mapping[tuple[str, ...], type[BaseModel]]
    pattern_help: Mapping[str, str]
    non_empty_hint: Mapping[tuple[str, ...], str]

    def check(self, model: type[M], data: dict[str, object]) -> tuple[M | None, list[Finding]]:
        """Validate `data` against `model`: the instance when valid, else one finding per
        error."""
        try:
            return model.model_validate(data), []
        except ValidationError as error:
            return None, [self.translate(item) for item in error.errors(include_url=False)]

    def translate(self, error: Any) -> Finding:
        """One pydantic error as a finding: its path, what is wrong and what is allowed."""
        loc: list[PathElement] = [e for e in error["loc"] if isinstance(e, str | int)]
        kind: str = error["type"]
        value = error.get("input")
        ctx: dict[str, Any] = error.get("ctx") or {}
        if loc and loc[-1] == "[key]":
            path: Path = tuple(loc[:-1])
            return Finding(path, f"keys must be strings, got {describe(path[-1])}", at="key")
        path = tuple(loc)
        noun = self.noun(path)
        if kind in ("missing", "extra_forbidden"):
            model = self.model_at.get(shape(path[:-1]))
            if kind == "missing":
                required = required_keys_of(model) if model is not None else []
                hint = f"; required here: {allowed(required)}" if required else ""
                return Finding(path, f"missing required key '{path[-1]}'{hint}", at="parent")
            keys = keys_of(model) if model is not None else []
            key = path[-1]
            return Finding(
                path,
                f"unknown key {describe(key)}; allowed: {allowed(keys)}{suggestion(key, keys)}",
                at="key",
            )
        if kind in _EXPECTED:
            return Finding(path, f"expected {_EXPECTED[kind]}, got {describe(value)}")
        if kind in ("enum", "literal_error"):
            options = self.options(path)
            if not isinstance(value, str):
                return Finding(
                    path,
                    f"expected {_article(noun)}, got {describe(value)}; allowed: "
                    f"{allowed(options)}",
                )
            return Finding(
                path,
                f"unknown {noun} {describe(value)}; allowed: {allowed(options)}"
                f"{suggestion(value, options)}",
            )
        if kind == "string_pattern_mismatch":
            pattern = str(ctx.get("pattern", ""))
            length = too_long(pattern, value)
            if length is not None:
                return Finding(path, f"{noun} {describe(value)} is too long: {length}")
            explanation = self.pattern_help.get(pattern, f"a string matching {pattern}")
            return Finding(path, f"invalid {noun} {describe(value)}; expected {explanation}")
        if kind in ("too_short", "string_too_short"):
            hint = self.non_empty_hint.get(shape(path), "expected at least one item")
            return Finding(path, f"must not be empty; {hint}")
        if kind == "greater_than_equal":
            return Finding(path, f"must be at least {ctx.get('ge')}, got {describe(value)}")
        if kind == "less_than_equal":
            return Finding(path, f"must be at most {ctx.get('le')}, got {describe(value)}")
        if kind == "invalid_key":
            return Finding(path, f"keys must be strings, got {describe(value)}", at="key")
        message = str(error.get("msg") or "invalid value")
        return Finding(path, f"{message}, got {describe(value)}")


SPEC_VOCABULARY = Vocabulary(_noun, _options, MODEL_AT, _PATTERN_HELP, _NON_EMPTY_HINT)


def check_structure(data: dict[str, object]) -> tuple[ServiceSpec | None, list[Finding]]:
    """Validate `data` against the model: the spec when valid, else one finding per error."""
    return SPEC_VOCABULARY.check(ServiceSpec, data)
