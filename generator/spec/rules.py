"""Semantic rules: the checks that span several keys (names, refs, states, permissions, events,
defaults). They run on plain data that may be only partly valid and skip what they cannot read;
the structural errors in those places are reported by `structure.py`."""

from __future__ import annotations

import keyword
import re
from collections import deque
from dataclasses import dataclass, field

from .defaults import default_problem
from .errors import Finding, Path
from .flows import check_ownership, check_sagas
from .model import CONSTRAINT_TYPES, FIELD_TYPES, OPERATIONS
from .naming import (
    ENTITY_EVENTS,
    ENTITY_NAME_PATTERN,
    ENUM_VALUE_PATTERN,
    IDENTIFIER_PATTERN,
    default_plural,
    entity_name_problem,
    field_name_problem,
    identifier_problem,
    snake_case,
)
from .suggest import allowed, describe, suggestion

_EVENT_OPERATION = {"created": "create", "updated": "update", "deleted": "delete"}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object) -> float | int | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _matches(pattern: str, value: str) -> bool:
    return re.fullmatch(pattern, value) is not None


@dataclass
class _Entity:
    index: int
    data: dict[str, object]
    name: str | None
    fields: dict[str, tuple[int, dict[str, object]]] = field(default_factory=dict)


def check_rules(data: dict[str, object]) -> list[Finding]:
    """Every semantic problem of the (possibly partly invalid) spec `data`."""
    entities = [
        _Entity(index, item, _str(item.get("name")))
        for index, item in enumerate(_list(data.get("entities")))
        if isinstance(item, dict)
    ]
    entity_names = list(dict.fromkeys(e.name for e in entities if e.name is not None))
    findings = _entity_names(entities)
    for entity in entities:
        findings += _entity(entity, entity_names)
    findings += _ref_cycles(entities)
    findings += _consumers(data.get("events"))
    findings += _dependencies(data.get("depends_on"), _str(data.get("name")))
    findings += check_ownership(data)
    findings += check_sagas(data)
    return findings


def _entity_names(entities: list[_Entity]) -> list[Finding]:
    findings: list[Finding] = []
    first: dict[str, int] = {}
    snakes: dict[str, _Entity] = {}
    tables: dict[str, _Entity] = {}
    for entity in entities:
        name, path = entity.name, ("entities", entity.index, "name")
        if name is None:
            continue
        if name in first:
            findings.append(
                Finding(
                    path,
                    f"duplicate entity name '{name}'; entity names must be unique (already "
                    f"used by entities[{first[name]}])",
                )
            )
            continue
        first[name] = entity.index
        if not _matches(ENTITY_NAME_PATTERN, name):
            continue
        problem = entity_name_problem(name)
        if problem is not None:
            findings.append(Finding(path, problem))
        snake = snake_case(name)
        if snake in snakes:
            other = snakes[snake]
            findings.append(
                Finding(
                    path,
                    f"entity name '{name}' becomes '{snake}' in snake_case, like "
                    f"entities[{other.index}] ('{other.name}'); entity names must differ in "
                    "snake_case too",
                )
            )
            continue
        snakes[snake] = entity
        plural = _str(entity.data.get("plural"))
        table = plural if plural is not None else default_plural(name)
        if table in tables:
            other = tables[table]
            where: Path = ("entities", entity.index, "plural") if plural is not None else path
            findings.append(
                Finding(
                    where,
                    f"table name '{table}' (the plural of '{name}') is already used by "
                    f"entities[{other.index}] ('{other.name}'); set a different 'plural'",
                )
            )
            continue
        tables[table] = entity
    return findings


def _entity(entity: _Entity, entity_names: list[str]) -> list[Finding]:
    base: Path = ("entities", entity.index)
    findings: list[Finding] = []
    for index, item in enumerate(_list(entity.data.get("fields"))):
        if not isinstance(item, dict):
            continue
        path: Path = (*base, "fields", index)
        findings += _field(path, item, entity_names)
        name = _str(item.get("name"))
        if name is None:
            continue
        if name in entity.fields:
            findings.append(
                Finding(
                    (*path, "name"),
                    f"duplicate field name '{name}'; field names must be unique within an "
                    f"entity (already used by fields[{entity.fields[name][0]}])",
                )
            )
            continue
        entity.fields[name] = (index, item)
        if _matches(IDENTIFIER_PATTERN, name):
            problem = field_name_problem(name)
            if problem is not None:
                findings.append(Finding((*path, "name"), problem))
    operations, operation_findings = _operations(base, entity.data)
    findings += operation_findings
    transitions, state_findings = _states(base, entity)
    findings += state_findings
    findings += _permissions(base, entity.data, operations, transitions)
    findings += _events(base, entity.data, operations, transitions)
    if entity.data.get("cache") is not None and operations is not None and "read" not in operations:
        findings.append(
            Finding(
                (*base, "cache"),
                "cache keeps reads by id, and this entity has no 'read' operation (its "
                f"operations: {allowed(operations)}); add 'read' or remove cache",
            )
        )
    return findings


def _operations(base: Path, data: dict[str, object]) -> tuple[list[str] | None, list[Finding]]:
    """The entity's operations (None when unreadable) and problems with the list."""
    if "operations" not in data:
        return list(OPERATIONS), []
    value = data["operations"]
    if not isinstance(value, list):
        return None, []
    findings: list[Finding] = []
    seen: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            continue
        if item in seen:
            findings.append(
                Finding(
                    (*base, "operations", index),
                    f"duplicate operation '{item}'; list each operation once",
                )
            )
            continue
        seen.append(item)
    return [op for op in OPERATIONS if op in seen], findings


def _states(base: Path, entity: _Entity) -> tuple[list[str], list[Finding]]:
    """The entity's transition names and problems with its state machine."""
    states = entity.data.get("states")
    if not isinstance(states, dict):
        return [], []
    path: Path = (*base, "states")
    findings: list[Finding] = []
    state_field = _str(states.get("field"))
    enum_fields = [name for name, (_, item) in entity.fields.items() if item.get("type") == "enum"]
    values: list[str] | None = None
    if state_field is not None:
        known = entity.fields.get(state_field)
        if known is None:
            findings.append(
                Finding(
                    (*path, "field"),
                    f"unknown field '{state_field}'; 'states.field' must name an enum field of "
                    f"this entity (its enum fields: {allowed(enum_fields)})"
                    f"{suggestion(state_field, enum_fields or list(entity.fields))}",
                )
            )
        elif known[1].get("type") not in FIELD_TYPES:
            pass  # an unknown or missing type is reported where it is
        elif known[1].get("type") != "enum":
            findings.append(
                Finding(
                    (*path, "field"),
                    f"field '{state_field}' is of type {describe(known[1].get('type'))}; "
                    "'states.field' must name an enum field of this entity (its enum fields: "
                    f"{allowed(enum_fields)})",
                )
            )
        elif isinstance(known[1].get("values"), list):
            values = [v for v in _list(known[1].get("values")) if isinstance(v, str)]
    names: list[str] = []
    for index, item in enumerate(_list(states.get("transitions"))):
        if not isinstance(item, dict):
            continue
        tpath: Path = (*path, "transitions", index)
        name = _str(item.get("name"))
        if name is not None:
            problem = _transition_name_problem(name, names)
            if problem is not None:
                findings.append(Finding((*tpath, "name"), problem))
            if name not in names:
                names.append(name)
        if values is not None and state_field is not None:
            findings += _transition_states(tpath, item, state_field, values)
    return names, findings


def _transition_name_problem(name: str, earlier: list[str]) -> str | None:
    if name in earlier:
        return f"duplicate transition name '{name}'; transition names must be unique"
    if not _matches(IDENTIFIER_PATTERN, name):
        return None
    if name in OPERATIONS:
        return (
            f"transition name '{name}' is an operation name ({', '.join(OPERATIONS)}); "
            "the routes would collide, choose another name"
        )
    if name in ENTITY_EVENTS:
        return (
            f"transition name '{name}' is also the name of the '{name}' event; choose another name"
        )
    return identifier_problem("transition name", name)


def _transition_states(
    path: Path, item: dict[str, object], state_field: str, values: list[str]
) -> list[Finding]:
    findings: list[Finding] = []

    def unknown(value: str) -> str:
        return (
            f"unknown state '{value}'; the states are the values of the enum field "
            f"'{state_field}': {allowed(values)}{suggestion(value, values)}"
        )

    seen: list[str] = []
    for index, value in enumerate(_list(item.get("from"))):
        if not isinstance(value, str):
            continue
        if value not in values:
            findings.append(Finding((*path, "from", index), unknown(value)))
        elif value in seen:
            findings.append(
                Finding((*path, "from", index), f"duplicate state '{value}'; list it once")
            )
        seen.append(value)
    target = _str(item.get("to"))
    if target is not None and target not in values:
        findings.append(Finding((*path, "to"), unknown(target)))
    return findings


def _permissions(
    base: Path, data: dict[str, object], operations: list[str] | None, transitions: list[str]
) -> list[Finding]:
    permissions = data.get("permissions")
    if not isinstance(permissions, dict):
        return []
    offered = operations if operations is not None else list(OPERATIONS)
    findings: list[Finding] = []
    for key in permissions:
        path: Path = (*base, "permissions", key)
        if key in transitions:
            continue
        if key in OPERATIONS:
            if operations is not None and key not in operations:
                findings.append(
                    Finding(
                        path,
                        f"permission for the operation '{key}', which this entity does not "
                        f"offer (its operations: {allowed(operations)}); remove it or add "
                        f"'{key}' to operations",
                        at="key",
                    )
                )
            continue
        options = [*offered, *transitions]
        findings.append(
            Finding(
                path,
                f"unknown permission key {describe(key)}; allowed: the entity's operations "
                f"and transitions: {allowed(options)}{suggestion(key, options)}",
                at="key",
            )
        )
    return findings


def _events(
    base: Path, data: dict[str, object], operations: list[str] | None, transitions: list[str]
) -> list[Finding]:
    findings: list[Finding] = []
    seen: list[str] = []
    options = [*ENTITY_EVENTS, *transitions]
    for index, event in enumerate(_list(data.get("events"))):
        if not isinstance(event, str):
            continue
        path: Path = (*base, "events", index)
        if event in seen:
            findings.append(Finding(path, f"duplicate event '{event}'; list each event once"))
            continue
        seen.append(event)
        if event in _EVENT_OPERATION:
            needed = _EVENT_OPERATION[event]
            if operations is None or needed in operations:
                continue
            if event == "updated" and transitions:
                continue
            findings.append(
                Finding(
                    path,
                    f"event '{event}' needs the '{needed}' operation, which this entity does "
                    f"not offer (its operations: {allowed(operations)})",
                )
            )
        elif event not in transitions:
            findings.append(
                Finding(
                    path,
                    f"unknown event {describe(event)}; allowed: created, updated, deleted and "
                    f"the entity's transitions: {allowed(options)}{suggestion(event, options)}",
                )
            )
    return findings


def _field(path: Path, data: dict[str, object], entity_names: list[str]) -> list[Finding]:
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in FIELD_TYPES:
        return []
    findings: list[Finding] = []
    for key, types in CONSTRAINT_TYPES.items():
        if data.get(key) is not None and kind not in types:
            findings.append(
                Finding(
                    (*path, key),
                    f"'{key}' does not apply to type '{kind}'; it applies only to: "
                    f"{', '.join(types)}",
                    at="key",
                )
            )
    if kind == "ref" and data.get("default") is not None:
        findings.append(
            Finding(
                (*path, "default"),
                "'default' is not allowed on a ref field; a ref has no default row",
                at="key",
            )
        )
    if data.get("unique") is True and kind in ("json", "text"):
        findings.append(
            Finding(
                (*path, "unique"),
                f"'unique' is not allowed on type '{kind}' (allowed on every type but text and "
                "json; use a string with max_length)",
            )
        )
    if data.get("index") is True and kind == "json":
        findings.append(
            Finding(
                (*path, "index"),
                "'index' is not allowed on type 'json' (allowed on every other type)",
            )
        )
    if kind == "enum":
        findings += _enum_values(path, data)
    if kind == "ref":
        findings += _ref_target(path, data, entity_names)
    findings += _constraint_values(path, data)
    if kind != "ref" and data.get("default") is not None:
        problem = default_problem(kind, data)
        if problem is not None:
            findings.append(Finding((*path, "default"), problem))
    return findings


def _enum_values(path: Path, data: dict[str, object]) -> list[Finding]:
    values = data.get("values")
    if values is None:
        return [
            Finding(
                (*path, "values"),
                "an enum field needs 'values': a non-empty list of its allowed values, e.g. "
                "[ACTIVE, ARCHIVED]",
                at="value" if "values" in data else "parent",
            )
        ]
    findings: list[Finding] = []
    seen: list[str] = []
    for index, value in enumerate(_list(values)):
        if not isinstance(value, str):
            continue
        vpath: Path = (*path, "values", index)
        if value in seen:
            findings.append(Finding(vpath, f"duplicate enum value '{value}'; list it once"))
            continue
        seen.append(value)
        if _matches(ENUM_VALUE_PATTERN, value) and keyword.iskeyword(value):
            findings.append(
                Finding(vpath, f"enum value '{value}' is a Python keyword; choose another name")
            )
    return findings


def _ref_target(path: Path, data: dict[str, object], entity_names: list[str]) -> list[Finding]:
    target = data.get("to")
    if target is None:
        return [
            Finding(
                (*path, "to"),
                "a ref field needs 'to': the name of an entity of this service "
                f"({allowed(entity_names)})",
                at="value" if "to" in data else "parent",
            )
        ]
    if isinstance(target, str) and target not in entity_names:
        return [
            Finding(
                (*path, "to"),
                f"unknown entity '{target}'; 'to' must name an entity of this service: "
                f"{allowed(entity_names)}{suggestion(target, entity_names)}",
            )
        ]
    return []


def _constraint_values(path: Path, data: dict[str, object]) -> list[Finding]:
    findings: list[Finding] = []
    low, high = _number(data.get("min")), _number(data.get("max"))
    if low is not None and high is not None and low > high:
        findings.append(
            Finding((*path, "max"), f"max ({high}) is less than min ({low}); need min <= max")
        )
    precision, scale = _int(data.get("precision")), _int(data.get("scale"))
    if precision is not None and scale is not None and scale > precision:
        findings.append(
            Finding(
                (*path, "scale"),
                f"scale ({scale}) is greater than precision ({precision}); need "
                "0 <= scale <= precision",
            )
        )
    pattern = _str(data.get("pattern"))
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as error:
            findings.append(Finding((*path, "pattern"), f"invalid regular expression: {error}"))
        except (RecursionError, OverflowError, ValueError) as error:
            findings.append(Finding((*path, "pattern"), f"invalid regular expression: {error}"))
    return findings


@dataclass(frozen=True)
class _Edge:
    source: str
    target: str
    entity_index: int
    field_index: int
    field_name: str


def _ref_cycles(entities: list[_Entity]) -> list[Finding]:
    names = {e.name for e in entities if e.name is not None}
    edges: list[_Edge] = []
    for entity in entities:
        if entity.name is None:
            continue
        for index, item in enumerate(_list(entity.data.get("fields"))):
            if not isinstance(item, dict) or item.get("type") != "ref":
                continue
            target, name = item.get("to"), item.get("name")
            if item.get("required") is True and isinstance(target, str) and target in names:
                label = name if isinstance(name, str) else f"fields[{index}]"
                edges.append(_Edge(entity.name, target, entity.index, index, label))
    graph: dict[str, list[_Edge]] = {}
    for edge in edges:
        graph.setdefault(edge.source, []).append(edge)
    findings: list[Finding] = []
    reported: set[frozenset[str]] = set()
    for edge in edges:
        back = _path(graph, edge.target, edge.source)
        if back is None:
            continue
        cycle = [edge, *back]
        members = frozenset(e.source for e in cycle)
        if members in reported:
            continue
        reported.add(members)
        path: Path = ("entities", edge.entity_index, "fields", edge.field_index, "required")
        if edge.source == edge.target:
            message = (
                f"required ref of '{edge.source}' to itself; no row could ever be created first; "
                "make it optional (drop 'required: true')"
            )
        else:
            chain = ", ".join(f"{e.source}.{e.field_name} -> {e.target}" for e in cycle)
            message = (
                f"required refs form a cycle ({chain}); no row could ever be created first; "
                "make one of them optional"
            )
        findings.append(Finding(path, message))
    return findings


def _path(graph: dict[str, list[_Edge]], start: str, goal: str) -> list[_Edge] | None:
    """The shortest chain of edges from `start` to `goal` ([] when they are the same)."""
    if start == goal:
        return []
    previous: dict[str, _Edge] = {}
    queue = deque([start])
    visited = {start}
    while queue:
        node = queue.popleft()
        for edge in graph.get(node, []):
            if edge.target in visited:
                continue
            visited.add(edge.target)
            previous[edge.target] = edge
            if edge.target == goal:
                chain = [edge]
                while chain[0].source != start:
                    chain.insert(0, previous[chain[0].source])
                return chain
            queue.append(edge.target)
    return None


def _consumers(events: object) -> list[Finding]:
    if not isinstance(events, dict):
        return []
    findings: list[Finding] = []
    handlers: list[str] = []
    for index, item in enumerate(_list(events.get("consumes"))):
        if not isinstance(item, dict):
            continue
        handler = _str(item.get("handler"))
        if handler is None:
            continue
        path: Path = ("events", "consumes", index, "handler")
        if handler in handlers:
            findings.append(
                Finding(path, f"duplicate handler '{handler}'; handler names must be unique")
            )
            continue
        handlers.append(handler)
        if _matches(IDENTIFIER_PATTERN, handler):
            problem = identifier_problem("handler name", handler)
            if problem is not None:
                findings.append(Finding(path, problem))
    return findings


def _dependencies(depends_on: object, service_name: str | None) -> list[Finding]:
    findings: list[Finding] = []
    seen: list[tuple[str, str]] = []
    for index, item in enumerate(_list(depends_on)):
        if not isinstance(item, dict):
            continue
        path: Path = ("depends_on", index)
        service, entity = _str(item.get("service")), _str(item.get("entity"))
        if service is not None and service == service_name:
            findings.append(
                Finding(
                    (*path, "service"),
                    f"a service cannot depend on itself ('{service}'); depend on other services",
                )
            )
        operations: list[str] = []
        for op_index, op in enumerate(_list(item.get("operations"))):
            if isinstance(op, str) and op in operations:
                findings.append(
                    Finding(
                        (*path, "operations", op_index),
                        f"duplicate operation '{op}'; list each operation once",
                    )
                )
            elif isinstance(op, str):
                operations.append(op)
        if service is not None and entity is not None:
            if (service, entity) in seen:
                findings.append(
                    Finding(
                        (*path, "entity"),
                        f"duplicate dependency on '{service}.{entity}'; list it once with all "
                        "its operations",
                    )
                )
            seen.append((service, entity))
    return findings
