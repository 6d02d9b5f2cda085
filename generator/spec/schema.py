"""The JSON Schema (draft 2020-12) of the spec format, for editors; `python -m microforge.spec`
rewrites the copy shipped next to this module (`service-spec.schema.json`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .model import ServiceSpec

SCHEMA_ID = "https://microforge.dev/schemas/service-spec.schema.json"
SCHEMA_FILE = Path(__file__).with_name("service-spec.schema.json")


def json_schema(
    model: type[BaseModel], schema_id: str, title: str, description: str
) -> dict[str, Any]:
    """The draft 2020-12 JSON Schema of a pydantic model, with its id, title and description."""
    generated = model.model_json_schema(mode="validation")
    generated.pop("title", None)
    generated.pop("description", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id,
        "title": title,
        "description": description,
        **generated,
    }


def spec_json_schema() -> dict[str, Any]:
    """The JSON Schema of a microforge service spec."""
    return json_schema(
        ServiceSpec,
        SCHEMA_ID,
        "microforge service spec",
        "A YAML domain spec from which microforge generates a FastAPI service: its name, "
        "entities (fields, operations, permissions, state machine, events), consumed events, "
        "dependencies on other services and rate limit.",
    )


def schema_text() -> str:
    """The schema as the text of the shipped file."""
    return json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n"


def write_json_schema(path: str | Path = SCHEMA_FILE) -> Path:
    """Write the schema to `path` (default: the file shipped with the package)."""
    target = Path(path)
    target.write_text(schema_text(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    """Rewrite the shipped schema file (or the path given as the only argument)."""
    args = sys.argv[1:] if argv is None else argv
    target = write_json_schema(args[0]) if args else write_json_schema()
    print(f"wrote {target}")
    return 0
