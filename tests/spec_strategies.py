"""Random *valid* service specs that cover the spec format broadly, for template property tests.

One builder, `build_spec`, draws every choice through a `Chooser`; two choosers drive it:
- `valid_specs()`: a Hypothesis strategy (shrinks a failing spec to a small one);
- `seeded_spec(seed)`: a plain `random.Random(seed)`, so one spec is reproduced from its seed
  alone, independently of Hypothesis' version and example database.

Every spec either chooser returns passes `microforge.spec.validate_spec_data`: names come from
pools of valid names (PascalCase entities ending in y/s/x, multi-word and long ones, SQL reserved
words as fields, names that look like identifiers of the generated code), required refs only
point to entities declared earlier (so they never form a cycle; optional refs go anywhere,
themselves included), and every default, bound and pattern agrees with its field's constraints.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from hypothesis import strategies as st

from microforge.spec import FIELD_TYPES, OPERATIONS
from microforge.spec.naming import GENERATED_CODE_NAMES

T = TypeVar("T")


SERVICE_NAMES = (
    "inventory",
    "catalog",
    "order-history",
    "payments2",
    "ab",
    "x-",
    "a--b",
    "user-profile-and-preferences-01",
)
ENTITY_NAMES = (
    # plain, multi-word, plurals of y/s/x/z/ch/sh, acronyms, digits, SQL words, soft keywords
    "Product",
    "Category",
    "OrderLine",
    "Address",
    "Box",
    "Status",
    "Company",
    "Tax",
    "Invoice",
    "StockEntry",
    "Bus",
    "Customer",
    "Story",
    "Glass",
    "Supply",
    "Key",
    "Day",
    "PaymentMethod",
    "Match",
    "Case",
    "Type",
    "User",
    "Group",
    "Order",
    "Index",
    "Person",
    "Series",
    "Quiz",
    "Branch",
    "Wish",
    "HTTPRequest",
    "APIKey",
    "Item2",
    "CustomerShippingAddressPreference",
)
TRICKY_ENTITY_NAMES = (
    # valid names that are also identifiers of the generated code or of its test suite
    "Entity",
    "Repository",
    "Transition",
    "Refs",
    "Page",
    "Factory",
    "Service",
    "Migrations",
    "Base",
    "Field",
    "Text",
    "Problem",
    "Settings",
    "Response",
    "List",
    "Tuple",
    "Dict",
    "Str",
    "Object",
    "Read",
    "ListQuery",
    "BaseModel",
)
UNSUPPORTED_ENTITY_NAMES = (
    # Names the generated model module imports and uses in the class body (sqlalchemy.orm.Mapped,
    # typing.Any, database.UTCDateTime): the validator refuses them.
    "Mapped",
    "Any",
    "UTCDateTime",
)
PLURALS = ("people", "data", "criteria", "order", "groups_of_things", "user", "select")
FIELD_NAMES = (
    "title",
    "name",
    "sku",
    "label",
    "code",
    "notes",
    "quantity",
    "price",
    "amount",
    "rating",
    "ratio",
    "weight",
    "is_active",
    "published",
    "starts_on",
    "due_at",
    "contact",
    "homepage",
    "payload",
    "attributes",
    "level",
    "status",
    "kind",
    "priority",
    "external_id",
    "x",
    "line2",
    "preferred_delivery_window_start_time",
)
SQL_FIELD_NAMES = (
    "order",
    "group",
    "user",
    "select",
    "check",
    "table",
    "where",
    "offset",
    "desc",
    "column",
    "default",
    "primary",
    "key",
    "index",
    "values",
    "end",
    "position",
    "value",
    "date",
    "time",
    "timestamp",
    "window",
)
TRICKY_FIELD_NAMES = (
    # valid names that are also names the generated modules use (builtins, imports, methods)
    "range",
    "min",
    "max",
    "filter",
    "filters",
    "format",
    "hash",
    "next",
    "database",
    "crud",
    "models",
    "annotated",
    "field",
    "text",
)
# The generated classes cannot have them: the validator refuses them
# (test_random_specs.test_validator_refuses_what_the_template_cannot_support).
UNSUPPORTED_FIELD_NAMES = GENERATED_CODE_NAMES
DESCRIPTIONS = (
    "Plain words.",
    'Price in "EUR", VAT included',
    "It's the owner's",
    r"Windows path C:\temp\new",
    'Quoted "at the end"',
    'Triple """ quotes',
    "Größe — 5 € ✓",
    "Two\nlines",
    "Ends with a backslash \\",
    "{{ not jinja }} {% raw %}",
    "A longer description that explains what the value means, where it comes from, who may change "
    "it and why anyone should care about it at all.",
)
ENUM_VALUE_POOLS = (
    ("ACTIVE", "INACTIVE", "ARCHIVED", "DRAFT", "PUBLISHED"),
    ("S", "M", "L", "XL", "XXL"),
    ("pending", "paid", "shipped", "cancelled", "refunded"),
    ("Low", "Medium", "High", "Urgent"),
    ("A", "a", "B", "b"),
    ("name", "value", "upper", "title", "count", "index"),
)
TRANSITION_NAMES = (
    "approve",
    "reject",
    "archive",
    "publish",
    "ship",
    "cancel",
    "reopen",
    "activate",
    "suspend",
    "resume",
    "mark_paid",
    "print",
    "format",
    "list_all",
)
SCOPES = ("public", "admin", "item:read", "item:write", "svc.items:manage-all")
REMOTE_ENTITIES = ("user.User", "catalog.Product", "order-history.OrderLine", "payments.Payment")
CONSUMED_EVENTS = ("order.OrderCreated", "payment.PaymentFailed", "user.UserDeleted")
HANDLERS = ("reserve_stock", "release_stock", "on_payment_failed", "print", "handle")
RATE_LIMITS = ("100/minute", "1/second", "5000/hour", "20/day")

# (pattern, shortest match, longest match or None, examples)
PATTERNS: tuple[tuple[str, int, int | None, tuple[str, ...]], ...] = (
    ("^[A-Z0-9-]+$", 1, None, ("SKU-1", "A")),
    ("^[a-z][a-z0-9_]*$", 1, None, ("abc", "x_1")),
    (r"^\d{3}-\d{4}$", 8, 8, ("555-0100",)),
    ("^[A-Z]{2}$", 2, 2, ("DE", "FR")),
    ("[a-z]+", 1, None, ("abc",)),
    (r"^\S+$", 1, None, ("token",)),
    ("^(red|green|blue)$", 3, 5, ("red", "green")),
    (r"^[A-Z]{3}\d{2,4}$", 5, 7, ("ABC12",)),
    (r"^\w+( \w+)*$", 1, None, ("hello world",)),
    ("[a-z]*", 0, None, ("", "abc")),
    (r"^[^@\s]+@[^@\s]+$", 3, None, ("a@b",)),
    ("^#[0-9a-fA-F]{6}$", 7, 7, ("#a1B2c3",)),
    ("(?i)^[a-z]+$", 1, None, ("Mixed",)),
)
JSON_DEFAULTS: tuple[Any, ...] = (
    {},
    {"a": 1, "b": [True, None, "x"]},
    [],
    [1, 2.5, "three"],
    "text",
    0,
    True,
)


class Chooser(Protocol):
    """Where the builder's choices come from."""

    def integer(self, low: int, high: int) -> int: ...

    def choice(self, options: Sequence[T]) -> T: ...


def chance(chooser: Chooser, percent: int) -> bool:
    """True with about `percent`% probability (shrinks to False)."""
    return chooser.integer(1, 100) <= percent if percent > 0 else False


def subset(
    chooser: Chooser, options: Sequence[T], low: int = 0, high: int | None = None
) -> list[T]:
    """Between `low` and `high` distinct options, in a drawn order."""
    pool = list(options)
    count = chooser.integer(low, min(len(pool), high if high is not None else len(pool)))
    picked: list[T] = []
    for _ in range(count):
        item = pool.pop(chooser.integer(0, len(pool) - 1))
        picked.append(item)
    return picked


class RandomChooser:
    """Choices from `random.Random(seed)`."""

    def __init__(self, seed: int | str) -> None:
        self.random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return self.random.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self.random.randrange(len(options))]


class HypothesisChooser:
    """Choices drawn by Hypothesis (`draw` of `st.composite` or `st.data()`)."""

    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self.draw = draw

    def integer(self, low: int, high: int) -> int:
        value: int = self.draw(st.integers(low, high))
        return value

    def choice(self, options: Sequence[T]) -> T:
        return options[self.integer(0, len(options) - 1)]


def snake_case(name: str) -> str:
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text).lower()


def default_plural(name: str) -> str:
    word = snake_case(name)
    if len(word) > 1 and word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    return word + "s"


def _number(chooser: Chooser, low: Decimal, high: Decimal, places: int) -> Decimal:
    """A number in [low, high] with at most `places` decimals (low, high on that grid)."""
    step = Decimal(1).scaleb(-places)
    steps = int((high - low) / step)
    return low + step * chooser.integer(0, steps)


def _as_yaml_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _bounds(chooser: Chooser, limit: Decimal, places: int) -> tuple[Decimal | None, Decimal | None]:
    """Optional min and max within [-limit, limit], min <= max."""
    low = _number(chooser, -limit, limit, places) if chance(chooser, 50) else None
    high = (
        _number(chooser, low if low is not None else -limit, limit, places)
        if chance(chooser, 50)
        else None
    )
    return low, high


def _draw_numeric(chooser: Chooser, field: dict[str, Any], kind: str) -> None:
    if kind == "integer":
        limit = Decimal(chooser.choice((10, 1000, 10**6, 2**31 - 1)))
        places = 0
    elif kind == "float":
        limit = Decimal(chooser.choice((1, 100, 10**6)))
        places = chooser.integer(0, 2)
    else:
        if chance(chooser, 80):
            field["precision"] = chooser.integer(1, 18)
        if chance(chooser, 70):
            field["scale"] = chooser.integer(0, field.get("precision", chooser.choice((6, 18))))
        # what the field means without precision or scale: 12 digits, 2 of them decimals
        precision = field.get("precision", max(12, field.get("scale", 0)))
        scale = field.get("scale", min(2, precision))
        whole = precision - scale
        places = chooser.integer(0, min(scale, 4))
        limit = min(Decimal(10) ** whole - Decimal(1).scaleb(-min(scale, 4)), Decimal(10**6))
    low, high = _bounds(chooser, limit, places)
    if low is not None:
        field["min"] = _as_yaml_number(low)
    if high is not None:
        field["max"] = _as_yaml_number(high)
    if chance(chooser, 40):
        value = _number(
            chooser, low if low is not None else -limit, high if high is not None else limit, places
        )
        if kind == "decimal" and chance(chooser, 60):
            field["default"] = f"{value:f}"
        else:
            field["default"] = _as_yaml_number(value)


def _draw_text(chooser: Chooser, field: dict[str, Any], kind: str) -> None:
    pattern = chooser.choice(PATTERNS) if chance(chooser, 35) else None
    shortest = pattern[1] if pattern else 0
    if chance(chooser, 70 if kind == "string" else 40):
        max_length = chooser.choice((1, 2, 3, 8, 20, 64, 255, 300))
        field["max_length"] = max(max_length, shortest, 1)
    if pattern is not None:
        field["pattern"] = pattern[0]
    if chance(chooser, 30):
        limit = field.get("max_length", 255)
        if pattern is not None:
            options = [e for e in pattern[3] if len(e) <= limit]
        else:
            options = [w[:limit] for w in ("draft", "n/a", 'say "hi"', "back\\slash", "ünï")]
        if options:
            field["default"] = chooser.choice(options)


def _draw_default(chooser: Chooser, field: dict[str, Any], kind: str) -> None:
    if not chance(chooser, 35):
        return
    if kind == "boolean":
        field["default"] = chance(chooser, 50)
    elif kind == "uuid":
        field["default"] = str(uuid.UUID(int=chooser.integer(0, 2**32)))
    elif kind == "date":
        day = dt.date(2024, 1, 1) + dt.timedelta(days=chooser.integer(0, 400))
        field["default"] = day if chance(chooser, 50) else day.isoformat()
    elif kind == "datetime":
        field["default"] = chooser.choice(
            (
                "2024-01-31T12:00:00Z",
                "2024-06-01T08:30:00+02:00",
                "2024-02-29T23:59:59",
                dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.UTC),
            )
        )
    elif kind == "email":
        field["default"] = "ops@example.com"
    elif kind == "url":
        field["default"] = chooser.choice(("https://example.com/x", "http://localhost:8000/a?b=c"))
    elif kind == "json":
        field["default"] = chooser.choice(JSON_DEFAULTS)


def _field_name(chooser: Chooser, taken: set[str]) -> str:
    pools = (FIELD_NAMES, SQL_FIELD_NAMES, TRICKY_FIELD_NAMES)
    pool = pools[chooser.choice((0, 0, 0, 1, 1, 2))]
    name = chooser.choice(pool)
    while name in taken:
        name = f"{name}_{len(taken)}"
    taken.add(name)
    return name


def _field(
    chooser: Chooser, kind: str, name: str, targets: list[str], required_targets: list[str]
) -> dict[str, Any]:
    field: dict[str, Any] = {"name": name, "type": kind}
    if chance(chooser, 15):
        field["description"] = chooser.choice(DESCRIPTIONS)
    if kind in ("integer", "float", "decimal"):
        _draw_numeric(chooser, field, kind)
    elif kind in ("string", "text"):
        _draw_text(chooser, field, kind)
    elif kind == "enum":
        pool = chooser.choice(ENUM_VALUE_POOLS)
        field["values"] = subset(chooser, pool, 1, 5)
        if chance(chooser, 40):
            field["default"] = chooser.choice(field["values"])
    elif kind == "ref":
        field["to"] = chooser.choice(targets)
    else:
        _draw_default(chooser, field, kind)
    if kind == "uuid" and chance(chooser, 40):
        field["references"] = chooser.choice(REMOTE_ENTITIES)
    # a ref is required only to an entity declared earlier: required refs never form a cycle
    may_require = kind != "ref" or field["to"] in required_targets
    if may_require and chance(chooser, 50 if kind == "ref" else 40):
        field["required"] = True
    if kind not in ("text", "json") and chance(chooser, 12):
        field["unique"] = True
    if kind != "json" and chance(chooser, 15):
        field["index"] = True
    return field


def _entity_names(chooser: Chooser, count: int) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        pool = TRICKY_ENTITY_NAMES if chance(chooser, 15) else ENTITY_NAMES
        name = chooser.choice(pool)
        if snake_case(name) not in {snake_case(n) for n in names}:
            names.append(name)
    return names


def _states(chooser: Chooser, entity: dict[str, Any]) -> list[str]:
    enums = [f for f in entity["fields"] if f["type"] == "enum"]
    if not enums or not chance(chooser, 60):
        return []
    field = chooser.choice(enums)
    names = subset(chooser, TRANSITION_NAMES, 1, 4)
    values: list[str] = field["values"]
    entity["states"] = {
        "field": field["name"],
        "transitions": [
            {"name": name, "from": subset(chooser, values, 1), "to": chooser.choice(values)}
            for name in names
        ],
    }
    return names


def _entity(
    chooser: Chooser, name: str, all_names: list[str], earlier: list[str]
) -> dict[str, Any]:
    entity: dict[str, Any] = {"name": name}
    if chance(chooser, 15):
        entity["description"] = chooser.choice(DESCRIPTIONS)
    taken: set[str] = set()
    fields = []
    for _ in range(chooser.integer(1, 7)):
        kind = chooser.choice(FIELD_TYPES)
        if kind == "ref":
            field_name = f"{snake_case(chooser.choice(all_names))}_id"
            while field_name in taken:
                field_name = f"{field_name}_{len(taken)}"
            taken.add(field_name)
            fields.append(_field(chooser, kind, field_name, all_names, earlier))
        else:
            fields.append(_field(chooser, kind, _field_name(chooser, taken), all_names, earlier))
    entity["fields"] = fields
    if chance(chooser, 35):
        entity["operations"] = chooser.choice(
            (
                subset(chooser, OPERATIONS),
                ["list"],
                ["read", "list"],
                ["create", "read", "list", "delete"],
                ["read", "list", "update", "delete"],
            )
        )
    operations = entity.get("operations", list(OPERATIONS))
    transitions = _states(chooser, entity)
    if chance(chooser, 40):
        keys = subset(chooser, [*operations, *transitions])
        entity["permissions"] = {key: chooser.choice(SCOPES) for key in keys}
    events = [e for e, op in (("created", "create"), ("deleted", "delete")) if op in operations]
    if "update" in operations or transitions:
        events.append("updated")
    if chance(chooser, 40):
        entity["events"] = subset(chooser, [*events, *transitions])
    if "read" in operations and chance(chooser, 30):
        entity["cache"] = {"ttl": chooser.choice(("500ms", "60s", "5m"))}
    return entity


def build_spec(chooser: Chooser) -> dict[str, Any]:
    """A valid service spec, every choice taken from `chooser`."""
    name = chooser.choice(SERVICE_NAMES)
    spec: dict[str, Any] = {"name": name}
    if chance(chooser, 30):
        spec["description"] = chooser.choice(DESCRIPTIONS)
    names = _entity_names(chooser, chooser.integer(1, 4))
    entities = [_entity(chooser, n, names, names[:i]) for i, n in enumerate(names)]
    tables = {default_plural(n) for n in names}
    for entity in entities:
        plural = chooser.choice(PLURALS)
        if chance(chooser, 15) and plural not in tables:
            tables.discard(default_plural(entity["name"]))
            tables.add(plural)
            entity["plural"] = plural
    spec["entities"] = entities
    if chance(chooser, 40):
        handlers = subset(chooser, HANDLERS, 1, 3)
        spec["events"] = {
            "consumes": [
                {"event": chooser.choice(CONSUMED_EVENTS), "handler": handler}
                for handler in handlers
            ]
        }
    if chance(chooser, 40):
        targets = [t for t in REMOTE_ENTITIES if t.split(".")[0] != name]
        spec["depends_on"] = [
            {
                "service": target.split(".")[0],
                "entity": target.split(".")[1],
                "operations": subset(chooser, OPERATIONS, 1),
            }
            for target in subset(chooser, targets, 1, 2)
        ]
    if chance(chooser, 40):
        spec["rate_limit"] = {"default": chooser.choice(RATE_LIMITS)}
    return spec


@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Hypothesis strategy: valid service specs covering the format broadly."""
    return build_spec(HypothesisChooser(draw))


def seeded_spec(seed: int | str) -> dict[str, Any]:
    """The valid spec of `seed`: the same spec for the same seed, on every machine."""
    return build_spec(RandomChooser(seed))
