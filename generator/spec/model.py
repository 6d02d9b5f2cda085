"""The pydantic model of a service spec: the structure (keys, types, name patterns) of the format.

Cross-field rules (refs, states, permissions, defaults, ...) live in `rules.py`; a spec is only
accepted when both agree. Models are strict: no coercion of "yes" to true or "1" to 1.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .naming import (
    DURATION_PATTERN,
    ENTITY_NAME_PATTERN,
    ENUM_VALUE_PATTERN,
    IDENTIFIER_PATTERN,
    PACKAGE_PATTERN,
    RATE_LIMIT_PATTERN,
    REMOTE_ENTITY_PATTERN,
    SCOPE_PATTERN,
    SERVICE_NAME_PATTERN,
    STEP_OPERATION_PATTERN,
    default_plural,
    service_snake,
    snake_case,
)


class FieldType(StrEnum):
    """The type of an entity field."""

    STRING = "string"
    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    BOOLEAN = "boolean"
    UUID = "uuid"
    DATE = "date"
    DATETIME = "datetime"
    EMAIL = "email"
    URL = "url"
    JSON = "json"
    ENUM = "enum"
    REF = "ref"


FIELD_TYPES: tuple[str, ...] = tuple(member.value for member in FieldType)
"""Every field type name, in the documented order."""

Operation = Literal["create", "read", "list", "update", "delete"]
OPERATIONS: tuple[str, ...] = get_args(Operation)
"""The five CRUD operations an entity can offer, in the documented order."""


def _number(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("number_type", "expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("finite_number", "expected a finite number")
    return value


def _all_operations() -> list[Operation]:
    return ["create", "read", "list", "update", "delete"]


def _read_only() -> list[str]:
    return ["read"]


Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]
ServiceName = Annotated[str, Field(pattern=SERVICE_NAME_PATTERN)]
EntityName = Annotated[str, Field(pattern=ENTITY_NAME_PATTERN)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
EnumValue = Annotated[str, Field(pattern=ENUM_VALUE_PATTERN)]
Scope = Annotated[str, Field(pattern=SCOPE_PATTERN)]
RemoteEntity = Annotated[str, Field(pattern=REMOTE_ENTITY_PATTERN)]
LaxFieldType = Annotated[FieldType, Strict(False)]
Duration = Annotated[str, Field(pattern=DURATION_PATTERN)]
StepOperation = Annotated[str, Field(pattern=STEP_OPERATION_PATTERN)]

_CONFIG = ConfigDict(extra="forbid", strict=True)

# Which types each constraint applies to (used by the rules and the JSON Schema).
CONSTRAINT_TYPES: dict[str, tuple[str, ...]] = {
    "max_length": ("string", "text"),
    "pattern": ("string", "text"),
    "min": ("integer", "float", "decimal"),
    "max": ("integer", "float", "decimal"),
    "precision": ("decimal",),
    "scale": ("decimal",),
    "values": ("enum",),
    "to": ("ref",),
    "references": ("uuid",),
}


def _field_schema_extra(schema: dict[str, Any]) -> None:
    rules: list[dict[str, Any]] = [
        {
            "if": {"properties": {"type": {"const": "enum"}}, "required": ["type"]},
            "then": {"required": ["values"]},
        },
        {
            "if": {"properties": {"type": {"const": "ref"}}, "required": ["type"]},
            "then": {"required": ["to"]},
        },
    ]
    for constraint, types in CONSTRAINT_TYPES.items():
        rules.append(
            {
                "if": {"required": [constraint]},
                "then": {"properties": {"type": {"enum": list(types)}}},
            }
        )
    schema["allOf"] = rules


class FieldSpec(BaseModel):
    """One field (column) of an entity."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra=_field_schema_extra, title="Field"
    )

    name: Identifier = Field(
        description="snake_case name of the field (column and JSON attribute); not a Python "
        "keyword, not id/created_at/updated_at/version (added automatically)",
    )
    type: LaxFieldType = Field(description="The field type.")
    description: str | None = Field(default=None, description="Human description of the field.")
    required: bool = Field(default=False, description="The field must be given on create.")
    unique: bool = Field(
        default=False, description="No two rows may share a value (not for text/json)."
    )
    index: bool = Field(default=False, description="Create a database index (not for json).")
    default: Any = Field(
        default=None, description="Default value, valid for the field type (not for ref)."
    )
    min: Number | None = Field(
        default=None, description="Smallest allowed value (integer, float, decimal)."
    )
    max: Number | None = Field(
        default=None, description="Largest allowed value (integer, float, decimal)."
    )
    max_length: int | None = Field(
        default=None, ge=1, description="Longest allowed length in characters (string, text)."
    )
    pattern: str | None = Field(
        default=None,
        description="Python regular expression the whole value must match (string, text).",
    )
    precision: int | None = Field(
        default=None, ge=1, le=38, description="Total number of digits (decimal)."
    )
    scale: int | None = Field(
        default=None,
        ge=0,
        le=38,
        description="Digits after the decimal point, at most the precision (decimal).",
    )
    values: list[EnumValue] | None = Field(
        default=None,
        min_length=1,
        description="The allowed values (enum; required there): unique identifiers.",
    )
    to: EntityName | None = Field(
        default=None,
        description="The entity of this service a ref field points to (ref; required there).",
    )
    references: RemoteEntity | None = Field(
        default=None,
        description="'service.Entity' in another service that a uuid field holds the id of.",
    )


class TransitionSpec(BaseModel):
    """A named transition of an entity's state machine."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Transition")

    name: Identifier = Field(
        description="snake_case name (route POST /v1/<plural>/{id}/<name>); not an operation name."
    )
    from_: list[EnumValue] = Field(
        alias="from", min_length=1, description="States the transition may start from."
    )
    to: EnumValue = Field(description="The state the transition leads to.")


class StatesSpec(BaseModel):
    """A state machine over one enum field of the entity."""

    model_config = ConfigDict(extra="forbid", strict=True, title="States")

    field: Identifier = Field(description="Name of an enum field of this entity holding the state.")
    transitions: list[TransitionSpec] = Field(
        min_length=1, description="The allowed transitions between values of that field."
    )


class CacheSpec(BaseModel):
    """Cache-aside of an entity's reads by id."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Cache")

    ttl: Duration = Field(
        default="60s",
        description="How long a cached row may be served before it is read again, e.g. 60s "
        "(writes refresh it as they commit, whatever the ttl).",
    )


class EntitySpec(BaseModel):
    """An entity: a table, a REST resource and its events."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Entity")

    name: EntityName = Field(description="PascalCase name of the entity, e.g. OrderLine.")
    plural: Identifier | None = Field(
        default=None,
        description="Plural snake_case name used for the table and the URL; default: the "
        "snake_case name pluralised (category -> categories).",
    )
    description: str | None = Field(default=None, description="Human description of the entity.")
    fields: list[FieldSpec] = Field(min_length=1, description="The fields of the entity.")
    operations: list[Operation] = Field(
        default_factory=_all_operations,
        description="The REST operations offered (default: all five).",
    )
    permissions: dict[str, Scope] = Field(
        default_factory=dict,
        description="Scope required per operation or transition name: 'public' or a scope "
        "such as product:write.",
    )
    states: StatesSpec | None = Field(
        default=None, description="Optional state machine on an enum field."
    )
    events: list[Identifier] = Field(
        default_factory=list,
        description="Events published: created, updated, deleted and transition names.",
    )
    owner: Identifier | None = Field(
        default=None,
        description="A uuid field holding the owning user: create sets it from the token's "
        "`sub`, and other users' rows answer 404.",
    )
    owner_bypass: Scope | None = Field(
        default=None,
        description="Scope that sees and acts on every user's rows (with `owner`); default "
        "<entity-snake>:admin.",
    )
    cache: CacheSpec | None = Field(
        default=None,
        description="Cache reads by id, e.g. {ttl: 60s}: in Redis when the service has "
        "REDIS_URL (shared by its replicas), else in each process's memory. Needs `read`.",
    )

    @model_validator(mode="after")
    def _fill_plural(self) -> EntitySpec:
        if self.plural is None:
            self.plural = default_plural(self.name)
        return self

    @property
    def snake(self) -> str:
        """snake_case name of the entity (module and variable names)."""
        return snake_case(self.name)

    @property
    def table(self) -> str:
        """Table and URL name: the explicit `plural` or the default plural."""
        return self.plural if self.plural is not None else default_plural(self.name)

    @property
    def bypass_scope(self) -> str | None:
        """The scope that lifts ownership (None without an owner)."""
        if self.owner is None:
            return None
        return self.owner_bypass or f"{self.snake}:admin"

    @property
    def transitions(self) -> list[TransitionSpec]:
        """The state machine's transitions (empty without a state machine)."""
        return list(self.states.transitions) if self.states is not None else []

    def field(self, name: str) -> FieldSpec | None:
        """The field called `name`, if any."""
        return next((f for f in self.fields if f.name == name), None)


class ConsumeSpec(BaseModel):
    """An event of another service this service handles."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ConsumedEvent")

    event: RemoteEntity = Field(description="'service.EventName', e.g. order.OrderCreated.")
    handler: Identifier = Field(
        description="snake_case name of the handler function (unique in the service)."
    )


class EventsSpec(BaseModel):
    """The service's event subscriptions."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Events")

    consumes: list[ConsumeSpec] = Field(
        default_factory=list, description="Events of other services this service consumes."
    )


class DependencySpec(BaseModel):
    """A synchronous dependency on an entity of another service."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Dependency")

    service: ServiceName = Field(description="Name of the other service (not this one).")
    entity: EntityName = Field(description="PascalCase name of the entity in that service.")
    plural: Identifier | None = Field(
        default=None,
        description="The entity's plural in that service (its URL /v1/<plural>), when that "
        "service's spec sets one; default: the snake_case name pluralised.",
    )
    operations: list[Identifier] = Field(
        default_factory=_read_only,
        min_length=1,
        description="Operations called on it (default: read): create, read, list, update, "
        "delete, or names of the entity's transitions in that service.",
    )


class SagaStepSpec(BaseModel):
    """One step of a saga: a call to another service, and the call that undoes it."""

    model_config = ConfigDict(extra="forbid", strict=True, title="SagaStep")

    name: Identifier = Field(description="snake_case name of the step (unique in the saga).")
    do: StepOperation = Field(
        description="'<service>.<Entity>.<operation>': a create, or a transition of the row an "
        "earlier create step made (see target); listed in depends_on."
    )
    undo: StepOperation | None = Field(
        default=None,
        description="'<service>.<Entity>.<operation>' undoing the step on the row it acted on: a "
        "transition or delete of the same entity; listed in depends_on.",
    )
    target: Identifier | None = Field(
        default=None,
        description="For a transition step: the earlier create step whose row it moves.",
    )
    timeout: Duration = Field(default="10s", description="Time allowed per attempt, e.g. 10s.")
    deadline: Duration = Field(
        default="2m",
        description="Retries of transient failures stop here and compensation starts, e.g. 2m.",
    )


class SagaSpec(BaseModel):
    """A saga: steps across services started by a subject row, compensated on failure."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Saga")

    name: Identifier = Field(description="snake_case name; one run per subject row.")
    entity: EntityName = Field(description="The subject: an entity of this service.")
    start: Identifier = Field(
        description="`created`, or a transition of the subject that starts the saga."
    )
    steps: list[SagaStepSpec] = Field(min_length=1, description="The steps, run in order.")
    succeed: Identifier = Field(description="Subject transition taken when every step is done.")
    fail: Identifier = Field(
        description="Subject transition taken after the compensations (the reason is kept)."
    )


class RateLimitSpec(BaseModel):
    """Rate limiting of the service's HTTP API."""

    model_config = ConfigDict(extra="forbid", strict=True, title="RateLimit")

    default: Annotated[str, Field(pattern=RATE_LIMIT_PATTERN)] = Field(
        description="Default limit per client: '<N>/<second|minute|hour|day>', e.g. 100/minute."
    )


class ServiceSpec(BaseModel):
    """A microforge service spec."""

    model_config = ConfigDict(extra="forbid", strict=True, title="ServiceSpec")

    name: ServiceName = Field(
        description="Service name: lowercase letters, digits and '-', 2-31 characters; the "
        "Python package is <name with '-' as '_'>_service."
    )
    description: str | None = Field(default=None, description="Human description of the service.")
    entities: list[EntitySpec] = Field(min_length=1, description="The entities of the service.")
    events: EventsSpec = Field(
        default_factory=EventsSpec, description="Events of other services this one consumes."
    )
    depends_on: list[DependencySpec] = Field(
        default_factory=list, description="Synchronous calls to entities of other services."
    )
    rate_limit: RateLimitSpec | None = Field(default=None, description="HTTP rate limiting.")
    sagas: list[SagaSpec] = Field(
        default_factory=list,
        description="Multi-service transactions started by a subject row, with compensation.",
    )
    packages: list[Annotated[str, Field(pattern=PACKAGE_PATTERN)]] = Field(
        default_factory=list,
        description="Extra PyPI distributions the service's own code imports (hooks, handlers, "
        "custom routes), as PEP 508 requirements, e.g. 'pwdlib[argon2]>=0.2'; added to the "
        "generated pyproject.toml.",
    )

    @property
    def snake(self) -> str:
        """The service name with '-' replaced by '_'."""
        return service_snake(self.name)

    @property
    def package(self) -> str:
        """The generated Python package: ``<snake>_service``."""
        return f"{self.snake}_service"

    def entity(self, name: str) -> EntitySpec | None:
        """The entity called `name`, if any."""
        return next((e for e in self.entities if e.name == name), None)


MODEL_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): ServiceSpec,
    ("entities",): EntitySpec,
    ("entities", "fields"): FieldSpec,
    ("entities", "states"): StatesSpec,
    ("entities", "states", "transitions"): TransitionSpec,
    ("events",): EventsSpec,
    ("events", "consumes"): ConsumeSpec,
    ("depends_on",): DependencySpec,
    ("rate_limit",): RateLimitSpec,
    ("sagas",): SagaSpec,
    ("sagas", "steps"): SagaStepSpec,
}
"""The model of the mapping found at a path shape (the path with list indices removed)."""


def keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a mapping of this model may hold, as written in YAML (aliases)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def required_keys_of(model: type[BaseModel]) -> list[str]:
    """The keys a mapping of this model must hold."""
    return [info.alias or name for name, info in model.model_fields.items() if info.is_required()]
