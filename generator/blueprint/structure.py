"""Structural validation of a blueprint: the spec layer's translation of the pydantic model's
errors into findings (`Vocabulary`), with the blueprint's words: what a value is called, what is
allowed, what a pattern means."""

from __future__ import annotations

from ..spec.errors import Finding, Path
from ..spec.naming import (
    IDENTIFIER_PATTERN,
    MAX_SERVICE_NAME,
    RATE_LIMIT_PATTERN,
    SERVICE_NAME_PATTERN,
)
from ..spec.structure import Vocabulary, shape
from .model import (
    BROKERS,
    CALL_PATTERN,
    DATABASES,
    MODEL_AT,
    PREFIX_PATTERN,
    RELATIVE_PATH_PATTERN,
    Blueprint,
)

_NOUNS: dict[tuple[str, ...], str] = {
    ("name",): "system name",
    ("services", "spec"): "spec path",
    ("services", "code"): "code directory",
    ("services", "database"): "database",
    ("auth", "issuer"): "service name",
    ("gateway", "name"): "gateway name",
    ("gateway", "routes", "prefix"): "route prefix",
    ("gateway", "routes", "service"): "service name",
    ("gateway", "routes", "auth"): "route auth",
    ("gateway", "rate_limit"): "rate limit",
    ("broker",): "broker",
    ("database",): "database",
    ("python_version",): "Python version",
    ("journey", "name"): "step name",
    ("journey", "call"): "call",
}

_OPTIONS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("broker",): BROKERS,
    ("database",): DATABASES,
    ("services", "database"): DATABASES,
    ("gateway", "routes", "auth"): ("required", "optional"),
    ("python_version",): ("3.11", "3.12", "3.13"),
}

_PATTERN_HELP: dict[str, str] = {
    SERVICE_NAME_PATTERN: f"2 to {MAX_SERVICE_NAME} lowercase letters, digits or '-', starting "
    "with a letter, e.g. 'shop'",
    IDENTIFIER_PATTERN: "a snake_case identifier, e.g. 'browse'",
    RATE_LIMIT_PATTERN: "'<N>/<second|minute|hour|day>' with N >= 1, e.g. '600/minute'",
    PREFIX_PATTERN: "lowercase letters, digits or '-', starting with a letter, e.g. 'orders'",
    CALL_PATTERN: "'<METHOD> <path>', e.g. 'GET /api/catalog/v1/products'",
    RELATIVE_PATH_PATTERN: "a path relative to the blueprint file, e.g. 'specs/catalog.yaml'",
}

_NON_EMPTY_HINT: dict[tuple[str, ...], str] = {
    ("services",): "a system needs at least one service",
    ("gateway", "routes"): "a gateway needs at least one route",
}


def _noun(path: Path) -> str:
    return _NOUNS.get(shape(path), "value")


def _options(path: Path) -> tuple[str, ...]:
    return _OPTIONS.get(shape(path), ())


BLUEPRINT_VOCABULARY = Vocabulary(_noun, _options, MODEL_AT, _PATTERN_HELP, _NON_EMPTY_HINT)


def check_structure(data: dict[str, object]) -> tuple[Blueprint | None, list[Finding]]:
    """Validate `data` against the model: the blueprint when valid, else one finding per error."""
    return BLUEPRINT_VOCABULARY.check(Blueprint, data)
