"""The blueprint layer (next to the spec layer): the model of a system's `blueprint.yaml`, its
loading with the specs it names, and the system rules, all problems raised at once as a
`SpecError`."""

from .graph import Call, calls, consumed, event_type, published, saga_steps
from .load import BLUEPRINT_FILE, BlueprintService, LoadedBlueprint, blueprint_file, load_blueprint
from .model import Blueprint, GatewaySpec, JourneyStep, RouteSpec, ServiceEntry
from .schema import blueprint_json_schema

__all__ = [
    "BLUEPRINT_FILE",
    "Blueprint",
    "BlueprintService",
    "Call",
    "GatewaySpec",
    "JourneyStep",
    "LoadedBlueprint",
    "RouteSpec",
    "ServiceEntry",
    "blueprint_file",
    "blueprint_json_schema",
    "calls",
    "consumed",
    "event_type",
    "load_blueprint",
    "published",
    "saga_steps",
]
