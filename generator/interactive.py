"""Interactive spec building for `microforge new` without `--spec` (questionary prompts).

Asks for the service name and description, then entities in a loop (each with fields in a loop
and its operations), and returns the spec mapping as a user would have written it in YAML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .spec import FIELD_TYPES, OPERATIONS, RESERVED_FIELD_NAMES
from .spec.naming import (
    ENTITY_NAME_PATTERN,
    ENUM_VALUE_PATTERN,
    IDENTIFIER_PATTERN,
    SERVICE_NAME_PATTERN,
    too_long,
)

Check = Callable[[str], bool | str]
"""A questionary validator: True when the text is acceptable, else the message to show."""


class Prompter:
    """The four kinds of question asked, with prompt_toolkit arguments (tests pass pipe input)."""

    def __init__(self, **prompt_kwargs: Any) -> None:
        self.prompt_kwargs = prompt_kwargs

    def text(self, message: str, *, default: str = "", validate: Check | None = None) -> str:
        import questionary

        answer = questionary.text(
            message, default=default, validate=validate, **self.prompt_kwargs
        ).unsafe_ask()
        return str(answer).strip()

    def confirm(self, message: str, *, default: bool = False) -> bool:
        import questionary

        return bool(
            questionary.confirm(message, default=default, **self.prompt_kwargs).unsafe_ask()
        )

    def select(self, message: str, choices: Sequence[str], *, default: str | None = None) -> str:
        import questionary

        answer = questionary.select(
            message, choices=list(choices), default=default, **self.prompt_kwargs
        ).unsafe_ask()
        return str(answer)

    def checkbox(self, message: str, choices: Sequence[str]) -> list[str]:
        import questionary

        answer = questionary.checkbox(
            message,
            choices=[questionary.Choice(choice, checked=True) for choice in choices],
            validate=lambda picked: bool(picked) or "choose at least one",
            **self.prompt_kwargs,
        ).unsafe_ask()
        return [str(choice) for choice in answer]


def matches(pattern: str, what: str, taken: Sequence[str] = (), *, optional: bool = False) -> Check:
    """A validator: the text matches `pattern` (or is empty when `optional`) and is not taken."""
    compiled = re.compile(pattern)

    def check(text: str) -> bool | str:
        text = text.strip()
        if optional and not text:
            return True
        if not compiled.fullmatch(text):
            length = too_long(pattern, text)
            return (
                f"{what} must match {pattern}"
                if length is None
                else f"{what} is too long: {length}"
            )
        if text in taken:
            return f"{text!r} is already used"
        return True

    return check


def positive_int(text: str) -> bool | str:
    """Validator of an optional positive integer."""
    text = text.strip()
    return not text or (text.isdigit() and int(text) > 0) or "a positive whole number, or empty"


def enum_values(text: str) -> bool | str:
    """Validator of a comma-separated list of distinct enum values."""
    values = split_values(text)
    if not values:
        return "give at least one value"
    bad = [value for value in values if not re.fullmatch(ENUM_VALUE_PATTERN, value)]
    if bad:
        return f"{bad[0]!r} is not a valid value (letters, digits and _, starting with a letter)"
    return len(set(values)) == len(values) or "the values must be distinct"


def split_values(text: str) -> list[str]:
    """``"A, B,C"`` -> ``["A", "B", "C"]``."""
    return [part.strip() for part in text.split(",") if part.strip()]


def ask_spec(prompter: Prompter | None = None) -> dict[str, Any]:
    """Ask for a whole service spec; the mapping holds only what the user chose."""
    ask = prompter or Prompter()
    spec: dict[str, Any] = {
        "name": ask.text(
            "Service name (lowercase, e.g. inventory):",
            validate=matches(SERVICE_NAME_PATTERN, "the service name"),
        )
    }
    description = ask.text("Description (optional):")
    if description:
        spec["description"] = description
    entities: list[dict[str, Any]] = []
    names: list[str] = []
    while True:
        first = not names
        name = ask.text(
            "Entity name (PascalCase, e.g. Product)" + (":" if first else "; empty when done:"),
            validate=matches(ENTITY_NAME_PATTERN, "an entity name", names, optional=not first),
        )
        if not name:
            break
        names.append(name)
        entities.append(ask_entity(ask, name, names))
    spec["entities"] = entities
    return spec


def ask_entity(ask: Prompter, name: str, entity_names: Sequence[str]) -> dict[str, Any]:
    """Ask for the fields and operations of entity `name` (refs may target `entity_names`)."""
    fields: list[dict[str, Any]] = []
    taken: list[str] = list(RESERVED_FIELD_NAMES)
    while True:
        first = not fields
        field_name = ask.text(
            f"{name}: field name (snake_case)" + (":" if first else "; empty when done:"),
            validate=matches(IDENTIFIER_PATTERN, "a field name", taken, optional=not first),
        )
        if not field_name:
            break
        taken.append(field_name)
        fields.append(ask_field(ask, field_name, entity_names))
    entity: dict[str, Any] = {"name": name, "fields": fields}
    operations = ask.checkbox(f"{name}: operations:", OPERATIONS)
    if list(operations) != list(OPERATIONS):
        entity["operations"] = operations
    return entity


def ask_field(ask: Prompter, name: str, entity_names: Sequence[str]) -> dict[str, Any]:
    """Ask for the type, `required` and the type's own settings of field `name`."""
    field_type = ask.select(f"{name}: type:", FIELD_TYPES, default="string")
    field: dict[str, Any] = {"name": name, "type": field_type}
    if field_type == "string":
        max_length = ask.text(f"{name}: max length (empty for none):", validate=positive_int)
        if max_length:
            field["max_length"] = int(max_length)
    elif field_type == "enum":
        values = ask.text(
            f"{name}: values (comma-separated, e.g. ACTIVE, RETIRED):", validate=enum_values
        )
        field["values"] = split_values(values)
    elif field_type == "ref":
        field["to"] = ask.select(f"{name}: refers to entity:", entity_names)
    if ask.confirm(f"{name}: required?", default=False):
        field["required"] = True
    return field


def spec_yaml(spec: dict[str, Any]) -> str:
    """The spec mapping as YAML text (written as `spec.yaml` into the generated project)."""
    import yaml

    header = "# The service spec microforge generated this project from (`microforge new`).\n"
    body: str = yaml.safe_dump(spec, sort_keys=False, default_flow_style=None, width=100)
    return header + body
