"""Naming rules shared by spec and generator: patterns, snake_case, plurals, reserved names."""

from __future__ import annotations

import keyword
import re
import sys

# The longest names the generated code is laid out for (it must stay within ruff's 100 columns,
# and table and column names within PostgreSQL's 63 characters).
MAX_ENTITY_NAME = 38
"""Longest entity name, also in snake_case (`from <package>.schemas.<snake> import (`)."""
MAX_IDENTIFIER = 48
"""Longest field, plural, transition, event, handler name and enum value."""
MAX_REMOTE_NAME = 80
"""Longest name after the dot of `service.Name` (an entity, or an event: entity + transition)."""

MAX_SERVICE_NAME = 31

SERVICE_NAME_PATTERN = rf"^[a-z][a-z0-9-]{{1,{MAX_SERVICE_NAME - 1}}}$"
ENTITY_NAME_PATTERN = rf"^[A-Z][A-Za-z0-9]{{0,{MAX_ENTITY_NAME - 1}}}$"
IDENTIFIER_PATTERN = rf"^[a-z][a-z0-9_]{{0,{MAX_IDENTIFIER - 1}}}$"
ENUM_VALUE_PATTERN = rf"^[A-Za-z][A-Za-z0-9_]{{0,{MAX_IDENTIFIER - 1}}}$"
SCOPE_PATTERN = r"^[a-z][a-z0-9_.:-]*$"
REMOTE_ENTITY_PATTERN = (
    SERVICE_NAME_PATTERN[:-1] + rf"\.[A-Z][A-Za-z0-9]{{0,{MAX_REMOTE_NAME - 1}}}$"
)
RATE_LIMIT_PATTERN = r"^[1-9][0-9]*/(second|minute|hour|day)$"
DURATION_PATTERN = r"^[1-9][0-9]*(ms|s|m|h)$"
PACKAGE_PATTERN = (
    r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?"
    r"( ?(==|!=|>=|<=|~=|>|<)[A-Za-z0-9.*+!-]+(, ?(==|!=|>=|<=|~=|>|<)[A-Za-z0-9.*+!-]+)*)?$"
)
"""A PEP 508 requirement without URLs or environment markers: `name[extras]` and versions."""
STEP_OPERATION_PATTERN = (
    SERVICE_NAME_PATTERN[:-1] + r"\.[A-Z][A-Za-z0-9]{0,%d}\.[a-z][a-z0-9_]{0,%d}$"
) % (MAX_ENTITY_NAME - 1, MAX_IDENTIFIER - 1)

LENGTH_LIMITS: dict[str, tuple[str, int]] = {
    SERVICE_NAME_PATTERN: (r"^[a-z][a-z0-9-]*$", MAX_SERVICE_NAME),
    ENTITY_NAME_PATTERN: (r"^[A-Z][A-Za-z0-9]*$", MAX_ENTITY_NAME),
    IDENTIFIER_PATTERN: (r"^[a-z][a-z0-9_]*$", MAX_IDENTIFIER),
    ENUM_VALUE_PATTERN: (r"^[A-Za-z][A-Za-z0-9_]*$", MAX_IDENTIFIER),
    REMOTE_ENTITY_PATTERN: (SERVICE_NAME_PATTERN[:-1] + r"\.[A-Z][A-Za-z0-9]*$", MAX_REMOTE_NAME),
}
"""Per length-bounded pattern: the same pattern without the bound, and the longest length (of the
name after the dot for `service.Name`), to tell a name that is only too long."""


def too_long(pattern: str, value: object) -> str | None:
    """Why `value` fails the length-bounded `pattern` when only its length does (e.g. "49
    characters, at most 48 are allowed ..."), else None."""
    if pattern not in LENGTH_LIMITS or not isinstance(value, str):
        return None
    loose, limit = LENGTH_LIMITS[pattern]
    name = value.partition(".")[2] if pattern == REMOTE_ENTITY_PATTERN else value
    if not re.match(loose, value) or len(name) <= limit:
        return None
    part = "the name after the dot has " if pattern == REMOTE_ENTITY_PATTERN else ""
    return (
        f"{part}{len(name)} characters, at most {limit} are allowed (the generated code is laid "
        "out for names up to that length); choose a shorter name"
    )


RESERVED_FIELD_NAMES: tuple[str, ...] = ("id", "created_at", "updated_at", "version")
"""Columns added to every entity automatically (in this order); a spec may not declare them."""

SHADOWED_MODULES: tuple[str, ...] = ("datetime", "decimal", "uuid", "enum", "typing", "json")
"""Standard-library modules the generated code imports by name."""

SHADOWED_BUILTINS: tuple[str, ...] = (
    "str",
    "int",
    "float",
    "bool",
    "list",
    "dict",
    "bytes",
    "object",
    "set",
    "tuple",
    "type",
)
"""Builtin names the generated code uses in type annotations."""

ORM_RESERVED: tuple[str, ...] = ("metadata", "registry", "query")
"""Attribute names SQLAlchemy declarative models or pydantic models use themselves."""

GENERATED_CODE_NAMES: tuple[str, ...] = (
    "sa",
    "mapped_column",
    "field_validator",
    "classmethod",
    "construct",
    "copy",
    "from_orm",
    "parse_file",
    "parse_obj",
    "parse_raw",
    "schema",
    "schema_json",
    "update_forward_refs",
    "validate",
)
"""Names the generated model and schema class bodies use, or pydantic's BaseModel methods."""

GENERATED_CLASS_NAMES: tuple[str, ...] = ("Mapped", "Any", "UTCDateTime")
"""Names the generated model modules import and use; an entity class may not take them."""

QUERY_PARAMETERS: tuple[str, ...] = ("limit", "cursor", "sort")
"""Query parameters of every list endpoint; a field of that name could not be filtered on."""

ENTITY_EVENTS: tuple[str, ...] = ("created", "updated", "deleted")
"""Lifecycle events an entity can publish (besides one per transition)."""


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """Seconds of a duration such as ``500ms``, ``10s``, ``2m`` or ``1h`` (DURATION_PATTERN)."""
    match = re.fullmatch(r"([0-9]+)(ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


def snake_case(name: str) -> str:
    """``OrderLine`` -> ``order_line``, ``HTTPRequest`` -> ``http_request``."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return text.lower()


def pluralize(word: str) -> str:
    """Simple English plural: y->ies after a consonant, s/x/z/ch/sh -> +es, else +s."""
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def default_plural(entity_name: str) -> str:
    """The plural (table and URL name) of an entity without an explicit `plural`."""
    return pluralize(snake_case(entity_name))


def service_snake(service_name: str) -> str:
    """``order-history`` -> ``order_history``."""
    return service_name.replace("-", "_")


def field_name_problem(name: str) -> str | None:
    """Why `name` cannot be a field name (a sentence), or None when it can."""
    if keyword.iskeyword(name):
        return f"field name '{name}' is a Python keyword; choose another name"
    if name in RESERVED_FIELD_NAMES:
        return (
            f"field name '{name}' is added to every entity automatically "
            f"({', '.join(RESERVED_FIELD_NAMES)}); remove this field"
        )
    if name in SHADOWED_MODULES:
        return (
            f"field name '{name}' would shadow the stdlib module '{name}' that the generated code "
            f"imports ({', '.join(SHADOWED_MODULES)}); choose another name"
        )
    if name in SHADOWED_BUILTINS:
        return (
            f"field name '{name}' would shadow the builtin type '{name}' used in the generated "
            "annotations; choose another name"
        )
    if name in ORM_RESERVED or name.startswith(("model_", "_")):
        return (
            f"field name '{name}' is reserved by SQLAlchemy/pydantic "
            f"({', '.join(ORM_RESERVED)}, and names starting with 'model_' or '_'); "
            "choose another name"
        )
    if name in GENERATED_CODE_NAMES:
        return (
            f"field name '{name}' is used by the generated model and schema classes "
            f"({', '.join(GENERATED_CODE_NAMES)}); choose another name"
        )
    if name in QUERY_PARAMETERS:
        return (
            f"field name '{name}' clashes with the list query parameter '{name}' "
            f"({', '.join(QUERY_PARAMETERS)}); choose another name"
        )
    return None


def entity_name_problem(name: str) -> str | None:
    """Why an entity called `name` cannot be generated (its snake_case name is used as a module)."""
    snake = snake_case(name)
    if len(snake) > MAX_ENTITY_NAME:
        return (
            f"entity name '{name}' is too long: its snake_case form '{snake}' (module and table "
            f"name) has {len(snake)} characters, at most {MAX_ENTITY_NAME} are allowed; choose a "
            "shorter name"
        )
    if keyword.iskeyword(snake):
        return (
            f"entity name '{name}' becomes the Python keyword '{snake}' in the generated code; "
            "choose another name"
        )
    if snake in sys.stdlib_module_names:
        return (
            f"entity name '{name}' would shadow the stdlib module '{snake}' (its generated "
            "module has that name); choose another name"
        )
    if name in GENERATED_CLASS_NAMES:
        return (
            f"entity name '{name}' is a name the generated model modules use "
            f"({', '.join(GENERATED_CLASS_NAMES)}); choose another name"
        )
    return None


def identifier_problem(kind: str, name: str) -> str | None:
    """Why a transition or handler name cannot be used as a Python identifier, or None."""
    if keyword.iskeyword(name):
        return f"{kind} '{name}' is a Python keyword; choose another name"
    return None
