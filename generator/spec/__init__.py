"""The spec layer: the model of a microforge service spec, its loading with positions, and its
validation into precise, all-at-once `SpecError`s."""

from .errors import SpecError, SpecIssue
from .model import (
    FIELD_TYPES,
    OPERATIONS,
    ConsumeSpec,
    DependencySpec,
    EntitySpec,
    EventsSpec,
    FieldSpec,
    FieldType,
    RateLimitSpec,
    ServiceSpec,
    StatesSpec,
    TransitionSpec,
)
from .naming import RESERVED_FIELD_NAMES, default_plural, pluralize, snake_case
from .schema import spec_json_schema, write_json_schema
from .validate import load_spec, parse_spec, validate_spec_data

__all__ = [
    "FIELD_TYPES",
    "OPERATIONS",
    "RESERVED_FIELD_NAMES",
    "ConsumeSpec",
    "DependencySpec",
    "EntitySpec",
    "EventsSpec",
    "FieldSpec",
    "FieldType",
    "RateLimitSpec",
    "ServiceSpec",
    "SpecError",
    "SpecIssue",
    "StatesSpec",
    "TransitionSpec",
    "default_plural",
    "load_spec",
    "parse_spec",
    "pluralize",
    "snake_case",
    "spec_json_schema",
    "validate_spec_data",
    "write_json_schema",
]
