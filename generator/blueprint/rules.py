"""System rules: what must hold between the blueprint and the specs it names (services unique
and known, dependencies offered by their provider, consumed events published, no cycle of
synchronous calls, gateway routes and the auth issuer naming services)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..spec import EntitySpec, ServiceSpec
from ..spec.errors import Finding, Path
from ..spec.suggest import allowed, suggestion
from .graph import published, saga_steps
from .model import Blueprint


@dataclass(frozen=True)
class Located:
    """A finding and the file it is in: None for the blueprint, else the service's index."""

    where: int | None
    finding: Finding


def check_system(blueprint: Blueprint, specs: Sequence[ServiceSpec]) -> list[Located]:
    """Every system problem of `blueprint` whose services' specs are `specs` (same order)."""
    names = [spec.name for spec in specs]
    by_name: dict[str, ServiceSpec] = {}
    found: list[Located] = []
    for index, spec in enumerate(specs):
        if spec.name in by_name:
            first = names.index(spec.name)
            message = (
                f"service '{spec.name}' is already named by services[{first}] "
                f"({blueprint.services[first].spec}); service names must be unique"
            )
            found.append(Located(None, Finding(("services", index, "spec"), message)))
            continue
        by_name[spec.name] = spec
    found += _blueprint_names(blueprint, list(by_name))
    for index, spec in enumerate(specs):
        if by_name.get(spec.name) is spec:
            found += [Located(index, f) for f in _service(spec, by_name)]
    found += _cycles(specs, by_name)
    return found


def _unknown_service(name: str, known: Sequence[str]) -> str:
    return (
        f"unknown service '{name}'; the blueprint's services are: {allowed(known)}"
        f"{suggestion(name, known)}"
    )


def _blueprint_names(blueprint: Blueprint, known: list[str]) -> list[Located]:
    found: list[Finding] = []
    if blueprint.auth is not None and blueprint.auth.issuer not in known:
        found.append(Finding(("auth", "issuer"), _unknown_service(blueprint.auth.issuer, known)))
    gateway = blueprint.gateway
    if gateway is not None:
        if gateway.name in known:
            found.append(
                Finding(
                    ("gateway", "name"),
                    f"'{gateway.name}' is also a service's name; the gateway needs a name (and a "
                    "directory) of its own",
                )
            )
        prefixes: dict[str, int] = {}
        for index, route in enumerate(gateway.routes):
            path = ("gateway", "routes", index)
            if route.prefix in prefixes:
                found.append(
                    Finding(
                        (*path, "prefix"),
                        f"duplicate prefix '{route.prefix}' (already routed by "
                        f"gateway.routes[{prefixes[route.prefix]}]); prefixes must be unique",
                    )
                )
            else:
                prefixes[route.prefix] = index
            if route.service not in known:
                found.append(Finding((*path, "service"), _unknown_service(route.service, known)))
        for index, step in enumerate(blueprint.journey):
            target = step.call.split(" ", 1)[1]
            parts = target.split("/")
            if len(parts) > 2 and parts[1] == "api" and parts[2] not in prefixes:
                found.append(
                    Finding(
                        ("journey", index, "call"),
                        f"no gateway route has the prefix '{parts[2]}'; routed prefixes: "
                        f"{allowed(prefixes)}{suggestion(parts[2], prefixes)}",
                    )
                )
    return [Located(None, finding) for finding in found]


def _offered(entity: EntitySpec) -> list[str]:
    return [str(op) for op in entity.operations] + [t.name for t in entity.transitions]


def _provider_entity(
    service: str, entity: str, by_name: dict[str, ServiceSpec]
) -> tuple[EntitySpec | None, str | None]:
    """The provider's entity, or None with the message saying why."""
    provider = by_name.get(service)
    if provider is None:
        return None, _unknown_service(service, list(by_name))
    found = provider.entity(entity)
    if found is None:
        names = [e.name for e in provider.entities]
        return None, (
            f"service '{service}' has no entity '{entity}'; its entities: {allowed(names)}"
            f"{suggestion(entity, names)}"
        )
    return found, None


def _service(spec: ServiceSpec, by_name: dict[str, ServiceSpec]) -> list[Finding]:
    found: list[Finding] = []
    for index, dependency in enumerate(spec.depends_on):
        path = ("depends_on", index)
        entity, problem = _provider_entity(dependency.service, dependency.entity, by_name)
        if problem is not None:
            key = "service" if dependency.service not in by_name else "entity"
            found.append(Finding((*path, key), problem))
            continue
        assert entity is not None
        if dependency.plural is not None and dependency.plural != entity.table:
            found.append(
                Finding(
                    (*path, "plural"),
                    f"'{dependency.service}.{entity.name}' is served at /v1/"
                    f"{entity.table.replace('_', '-')}: its plural is '{entity.table}', not "
                    f"'{dependency.plural}'",
                )
            )
        elif dependency.plural is None and entity.plural != _default(entity):
            found.append(
                Finding(
                    path,
                    f"'{dependency.service}.{entity.name}' has the plural '{entity.table}' in its "
                    f"spec: add plural: {entity.table}",
                    at="value",
                )
            )
        offered = _offered(entity)
        for op_index, operation in enumerate(dependency.operations):
            if operation not in offered:
                found.append(
                    Finding(
                        (*path, "operations", op_index),
                        f"'{dependency.service}.{entity.name}' does not offer '{operation}'; it "
                        f"offers: {allowed(offered)}{suggestion(operation, offered)}",
                    )
                )
    for index, consume in enumerate(spec.events.consumes):
        source, kind = consume.event.split(".", 1)
        where: Path = ("events", "consumes", index, "event")
        provider = by_name.get(source)
        if provider is None:
            found.append(Finding(where, _unknown_service(source, list(by_name))))
            continue
        events = published(provider)
        if kind not in events:
            found.append(
                Finding(
                    where,
                    f"service '{source}' does not publish '{kind}'; it publishes: "
                    f"{allowed(events)}{suggestion(kind, events)}",
                )
            )
    found += _sagas(spec, by_name)
    return found


def _sagas(spec: ServiceSpec, by_name: dict[str, ServiceSpec]) -> list[Finding]:
    """Saga steps name an operation their provider offers (when the spec layer has sagas)."""
    found: list[Finding] = []
    for _saga, _step, _action, target, dotted in saga_steps(spec):
        parts = target.split(".")
        if len(parts) != 3:
            continue
        entity, problem = _provider_entity(parts[0], parts[1], by_name)
        path = tuple(_parse_path(dotted))
        if problem is not None:
            found.append(Finding(path, problem))
        elif entity is not None and parts[2] not in [*_offered(entity), "delete"]:
            offered = _offered(entity)
            found.append(
                Finding(
                    path,
                    f"'{parts[0]}.{parts[1]}' does not offer '{parts[2]}'; it offers: "
                    f"{allowed(offered)}{suggestion(parts[2], offered)}",
                )
            )
    return found


def _parse_path(dotted: str) -> list[str | int]:
    out: list[str | int] = []
    for part in dotted.replace("]", "").split("."):
        name, *indices = part.split("[")
        out.append(name)
        out += [int(i) for i in indices]
    return out


def _default(entity: EntitySpec) -> str:
    from ..spec import default_plural

    return default_plural(entity.name)


def _cycles(specs: Sequence[ServiceSpec], by_name: dict[str, ServiceSpec]) -> list[Located]:
    """One finding per cycle of synchronous calls (at the call that closes it)."""
    edges: dict[str, list[tuple[str, int]]] = {name: [] for name in by_name}
    for spec in by_name.values():
        for index, dependency in enumerate(spec.depends_on):
            if dependency.service in by_name:
                edges[spec.name].append((dependency.service, index))
    index_of = {spec.name: i for i, spec in reversed(list(enumerate(specs)))}
    found: list[Located] = []
    reported: set[frozenset[str]] = set()
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target, dep_index in edges[node]:
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    message = (
                        "synchronous calls form a cycle: "
                        + " -> ".join(cycle)
                        + "; a service may not call itself through others (use an event for "
                        "one direction)"
                    )
                    where = ("depends_on", dep_index, "service")
                    found.append(Located(index_of[node], Finding(where, message)))
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for name in by_name:
        if name not in state:
            visit(name)
    return found
