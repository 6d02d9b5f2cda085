"""The JSON Schema (draft 2020-12) of the blueprint format, for editors."""

from __future__ import annotations

from typing import Any

from ..spec.schema import json_schema
from .model import Blueprint

SCHEMA_ID = "https://microforge.dev/schemas/blueprint.schema.json"


def blueprint_json_schema() -> dict[str, Any]:
    """The JSON Schema of a microforge system blueprint."""
    return json_schema(
        Blueprint,
        SCHEMA_ID,
        "microforge system blueprint",
        "A YAML blueprint from which microforge generates a whole system: its services (a spec "
        "each, with an optional code overlay), the token issuer, the API gateway, the broker, "
        "the default database, the main user journey and the deployment artefacts.",
    )
