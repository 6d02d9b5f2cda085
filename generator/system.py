"""The plan layer of a system: from a loaded blueprint, the render plan of every service, of the
gateway and of the system files, with the `gateway` and `system` answers derived from the
blueprint's graph (the contract between the blueprint and the system templates). Pure: no
Copier import, no writes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .blueprint import LoadedBlueprint, calls, consumed, load_blueprint, published
from .plan import PlanError, RenderPlan, SpecSource, plan_service, template_root
from .spec import ServiceSpec
from .spec.naming import service_snake, snake_case

FIRST_SERVICE_PORT = 8001
GATEWAY_PORT = 8080


@dataclass(frozen=True)
class ServicePlan:
    """One service of the system: its render plan and its code overlay (source file, path in
    the project)."""

    name: str
    plan: RenderPlan
    overlay: tuple[tuple[Path, str], ...]


@dataclass(frozen=True)
class SystemPlan:
    """Everything `microforge blueprint` renders: services, gateway, system files."""

    name: str
    services: tuple[ServicePlan, ...]
    gateway: RenderPlan | None
    system: RenderPlan
    answers: dict[str, Any]

    def projects(self) -> dict[str, RenderPlan]:
        """Directory name -> render plan of every subproject (services, then the gateway)."""
        found = {service.name: service.plan for service in self.services}
        if self.gateway is not None:
            found[str(self.gateway.data["gateway"]["name"])] = self.gateway
        return found


def user_owned(root: Path | None = None) -> list[str]:
    """The template's `_skip_if_exists` patterns: the files a service's owner owns."""
    import yaml

    root = template_root() if root is None else root
    try:
        text = (root / "copier.yml").read_text(encoding="utf-8")
        config = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as error:
        raise PlanError(f"cannot read {root / 'copier.yml'}: {error}") from None
    patterns = config.get("_skip_if_exists") if isinstance(config, dict) else None
    return [str(p) for p in patterns] if isinstance(patterns, list) else []


def read_blueprint(path: str | Path, root: Path | None = None) -> LoadedBlueprint:
    """Load and validate a blueprint, its specs and its code overlays (`SpecError`)."""
    return load_blueprint(path, user_owned(root))


def env_name(service: str) -> str:
    """``order-history`` -> ``ORDER_HISTORY`` (for ORDER_HISTORY_SERVICE_URL)."""
    return service_snake(service).upper()


PUBLIC_SCOPE = "public"
READ_OPERATIONS = ("read", "list")
CRUD_OPERATIONS = ("create", "read", "list", "update", "delete")


def operation_scope(spec: ServiceSpec, entity_name: str, operation: str) -> str | None:
    """The scope `spec`'s service requires for `operation` (CRUD or transition) of its entity
    (the template's defaults: `<entity>:read` for reads, `<entity>:write` for writes, a
    transition the `update` scope); None when the entity or operation is unknown."""
    entity = next((e for e in spec.entities if e.name == entity_name), None)
    if entity is None:
        return None
    permissions = entity.permissions
    snake = snake_case(entity.name)
    if operation in CRUD_OPERATIONS:
        suffix = ":read" if operation in READ_OPERATIONS else ":write"
        return str(permissions.get(operation, snake + suffix))
    if operation in {str(t.name) for t in entity.transitions}:
        return str(permissions.get(operation, permissions.get("update", snake + ":write")))
    return None


def call_scopes(specs: Iterable[ServiceSpec]) -> dict[str, dict[str, list[str]]]:
    """Per calling service and per service it calls, the scopes its calls need: for every call
    (its `depends_on` operations and saga steps), the scope the provider's spec requires for
    that operation (`public` ones need none). Services that call nobody are left out."""
    by_name = {spec.name: spec for spec in specs}
    found: dict[str, dict[str, list[str]]] = {}
    for spec in by_name.values():
        per_provider: dict[str, set[str]] = {}
        for call in calls(spec):
            scopes = per_provider.setdefault(call.target, set())
            provider = by_name.get(call.target)
            if provider is None:
                continue
            scope = operation_scope(provider, call.entity, call.operation)
            if scope is not None and scope != PUBLIC_SCOPE:
                scopes.add(scope)
        if per_provider:
            found[spec.name] = {name: sorted(scopes) for name, scopes in per_provider.items()}
    return found


def client_scopes(specs: Iterable[ServiceSpec]) -> dict[str, list[str]]:
    """The scopes of each calling service's client (its service token): the union of what its
    calls to every provider need (`call_scopes`)."""
    return {
        caller: sorted({scope for scopes in providers.values() for scope in scopes})
        for caller, providers in call_scopes(specs).items()
    }


def system_answer(loaded: LoadedBlueprint) -> dict[str, Any]:
    """The `system` answer (see the contract): the blueprint's graph as plain data."""
    blueprint = loaded.blueprint
    services: list[dict[str, Any]] = []
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    scopes = client_scopes(service.spec for service in loaded.services)
    for offset, service in enumerate(loaded.services):
        spec = service.spec
        outgoing = calls(spec)
        for call in outgoing:
            edge = edges.setdefault(
                (call.source, call.target),
                {"from": call.source, "to": call.target, "operations": [], "saga": False},
            )
            if call.operation not in edge["operations"]:
                edge["operations"].append(call.operation)
            edge["saga"] = edge["saga"] or call.saga
        for source, kind in consumed(spec):
            events.append({"from": source, "to": spec.name, "event": kind})
        services.append(
            {
                "name": spec.name,
                "package": spec.package,
                "env": env_name(spec.name),
                "port": FIRST_SERVICE_PORT + offset,
                "database": service.database,
                "description": spec.description or "",
                "publishes": published(spec),
                "consumes": [{"service": s, "event": e} for s, e in consumed(spec)],
                "calls": sorted({call.target for call in outgoing}),
                "client_scopes": scopes.get(spec.name, []),
                "entities": [entity.name for entity in spec.entities],
            }
        )
    order = [s["name"] for s in services]
    events.sort(key=lambda e: (order.index(e["from"]), order.index(e["to"]), e["event"]))
    gateway = blueprint.gateway
    return {
        "name": blueprint.name,
        "description": blueprint.description or "",
        "broker": blueprint.broker,
        "database": blueprint.database,
        "python_version": blueprint.python_version,
        "auth_issuer": blueprint.auth.issuer if blueprint.auth is not None else None,
        "services": services,
        "gateway": None
        if gateway is None
        else {
            "name": gateway.name,
            "port": GATEWAY_PORT,
            "rate_limit": gateway.rate_limit,
            "routes": [route.model_dump() for route in gateway.routes],
        },
        "calls": list(edges.values()),
        "events": events,
        "journey": [step.model_dump(exclude_none=True) for step in blueprint.journey],
        "deploy": blueprint.deploy.model_dump(),
    }


def gateway_answer(loaded: LoadedBlueprint) -> dict[str, Any] | None:
    """The `gateway` answer (see the contract), or None without a gateway."""
    blueprint = loaded.blueprint
    gateway = blueprint.gateway
    if gateway is None:
        return None
    return {
        "name": gateway.name,
        "description": f"API gateway of {blueprint.name}",
        "system": blueprint.name,
        "routes": [route.model_dump() for route in gateway.routes],
        "rate_limit": gateway.rate_limit,
        "auth": {"issuer": blueprint.auth.issuer} if blueprint.auth is not None else None,
    }


def plan_system(loaded: LoadedBlueprint, root: Path | None = None) -> SystemPlan:
    """The render plans of a whole system."""
    root = template_root() if root is None else root
    python_version = loaded.blueprint.python_version
    services: list[ServicePlan] = []
    for service in loaded.services:
        plan = plan_service(
            SpecSource(service.spec, service.data),
            database=service.database,
            python_version=python_version,
            root=root,
        )
        plan = RenderPlan(
            plan.template_root, {"kind": "service", **plan.data}, plan.package, plan.project_name
        )
        code = service.code
        overlay = tuple((code / name, name) for name in service.overlay) if code else ()
        services.append(ServicePlan(service.spec.name, plan, overlay))
    gateway_data = gateway_answer(loaded)
    gateway = None
    if gateway_data is not None:
        name = str(gateway_data["name"])
        gateway = RenderPlan(
            root,
            {"kind": "gateway", "gateway": gateway_data, "python_version": python_version},
            f"{service_snake(name)}_service",
            name,
        )
    answers = system_answer(loaded)
    system = RenderPlan(
        root,
        {"kind": "system", "system": answers, "python_version": python_version},
        "",
        loaded.blueprint.name,
    )
    return SystemPlan(loaded.blueprint.name, tuple(services), gateway, system, answers)
