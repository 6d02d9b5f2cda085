"""Rules of the spec's multi-service features: row ownership (`owner`, `owner_bypass`) and
sagas (`sagas:` steps calling `depends_on` operations, compensation, subject transitions).

Like `rules.py`, they run on plain, possibly partly invalid data and skip what they cannot read.
What a provider offers (its entities, transitions) is only known to a blueprint; here a step is
checked against this spec's own `depends_on`.
"""

from __future__ import annotations

import re

from .errors import Finding, Path
from .model import OPERATIONS
from .naming import DURATION_PATTERN, STEP_OPERATION_PATTERN, duration_seconds
from .suggest import allowed, describe, suggestion

UNDO_OPERATIONS = ("delete",)
"""CRUD operations an `undo` may name besides transitions."""


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, object]:
    return value if isinstance(value, dict) else {}


def check_ownership(data: dict[str, object]) -> list[Finding]:
    """Problems with `owner` and `owner_bypass` of every entity."""
    findings: list[Finding] = []
    for index, entity in enumerate(_list(data.get("entities"))):
        if not isinstance(entity, dict):
            continue
        base: Path = ("entities", index)
        owner = _str(entity.get("owner"))
        items = [item for item in _list(entity.get("fields")) if isinstance(item, dict)]
        fields = {_str(item.get("name")): item for item in items}
        if owner is None:
            if "owner_bypass" in entity and entity.get("owner_bypass") is not None:
                findings.append(
                    Finding(
                        (*base, "owner_bypass"),
                        "'owner_bypass' only applies to an entity with an 'owner'; add 'owner' "
                        "or remove it",
                        at="key",
                    )
                )
            continue
        permissions = entity.get("permissions")
        for key, scope in permissions.items() if isinstance(permissions, dict) else []:
            if scope == "public":
                findings.append(
                    Finding(
                        (*base, "permissions", key),
                        f"'{key}' of an entity with an owner cannot be public: each row belongs "
                        "to the user whose token created it; name a scope",
                    )
                )
        field = fields.get(owner)
        uuid_fields = [name for name, item in fields.items() if name and item.get("type") == "uuid"]
        if field is None:
            findings.append(
                Finding(
                    (*base, "owner"),
                    f"unknown field '{owner}'; 'owner' must name a uuid field of this entity "
                    f"(its uuid fields: {allowed(uuid_fields)}){suggestion(owner, uuid_fields)}",
                )
            )
        elif field.get("type") != "uuid":
            findings.append(
                Finding(
                    (*base, "owner"),
                    f"field '{owner}' is of type {describe(field.get('type'))}; 'owner' must "
                    "name a uuid field (it holds the token's `sub`; uuid fields: "
                    f"{allowed(uuid_fields)})",
                )
            )
        elif field.get("default") is not None:
            findings.append(
                Finding(
                    (*base, "owner"),
                    f"owner field '{owner}' has a default; the owner comes from the caller's "
                    "token: remove the default",
                )
            )
    return findings


class _Subject:
    """What a saga needs to know of its subject entity."""

    def __init__(self, entity: dict[str, object]) -> None:
        operations = entity.get("operations")
        self.operations = (
            [op for op in _list(operations) if isinstance(op, str)]
            if isinstance(operations, list)
            else list(OPERATIONS)
        )
        states = _dict(entity.get("states"))
        self.transitions: dict[str, dict[str, object]] = {}
        for item in _list(states.get("transitions")):
            name = _str(_dict(item).get("name"))
            if name is not None and name not in self.transitions:
                self.transitions[name] = _dict(item)
        state_field = _str(states.get("field"))
        self.initial: str | None = None
        for field in _list(entity.get("fields")):
            if isinstance(field, dict) and field.get("name") == state_field:
                self.initial = _str(field.get("default"))

    def sources(self, transition: str) -> list[str]:
        return [s for s in _list(self.transitions[transition].get("from")) if isinstance(s, str)]


def check_sagas(data: dict[str, object]) -> list[Finding]:
    """Problems with every saga: its subject, start, steps and outcome transitions."""
    entities = {
        name: item
        for item in _list(data.get("entities"))
        if isinstance(item, dict) and (name := _str(item.get("name"))) is not None
    }
    offered = _offered(data.get("depends_on"))
    findings: list[Finding] = []
    names: list[str] = []
    for index, saga in enumerate(_list(data.get("sagas"))):
        if not isinstance(saga, dict):
            continue
        base: Path = ("sagas", index)
        findings += _unique_name(base, saga, names, "saga")
        findings += _saga_subject(base, saga, entities)
        findings += _saga_steps(base, saga, offered)
    return findings


def _unique_name(path: Path, item: dict[str, object], seen: list[str], noun: str) -> list[Finding]:
    """A finding when `item`'s name is one of `seen` (which then holds it)."""
    name = _str(item.get("name"))
    if name is None:
        return []
    if name in seen:
        message = f"duplicate {noun} name '{name}'; {noun} names must be unique"
        return [Finding((*path, "name"), message)]
    seen.append(name)
    return []


def _offered(depends_on: object) -> dict[tuple[str, str], list[str]]:
    """Operations called per (service, Entity), from `depends_on`."""
    offered: dict[tuple[str, str], list[str]] = {}
    for item in _list(depends_on):
        if not isinstance(item, dict):
            continue
        service, entity = _str(item.get("service")), _str(item.get("entity"))
        if service is None or entity is None:
            continue
        operations = item.get("operations", ["read"])
        ops = offered.setdefault((service, entity), [])
        ops += [op for op in _list(operations) if isinstance(op, str) and op not in ops]
    return offered


def _saga_subject(
    base: Path, saga: dict[str, object], entities: dict[str, dict[str, object]]
) -> list[Finding]:
    entity_name = _str(saga.get("entity"))
    if entity_name is None:
        return []
    entity = entities.get(entity_name)
    if entity is None:
        names = list(entities)
        return [
            Finding(
                (*base, "entity"),
                f"unknown entity '{entity_name}'; a saga's subject is an entity of this service "
                f"({allowed(names)}){suggestion(entity_name, names)}",
            )
        ]
    subject = _Subject(entity)
    if not subject.transitions:
        return [
            Finding(
                (*base, "entity"),
                f"entity '{entity_name}' has no state machine; a saga ends with a transition of "
                "its subject ('succeed', 'fail'): add 'states' to the entity",
            )
        ]
    findings: list[Finding] = []
    start = _str(saga.get("start"))
    state: str | None = None
    if start == "created":
        if "create" not in subject.operations:
            findings.append(
                Finding(
                    (*base, "start"),
                    f"the saga starts when a {entity_name} is created, but {entity_name} does not "
                    "offer 'create'",
                )
            )
        state = subject.initial
    elif start is not None:
        if start in subject.transitions:
            state = _str(subject.transitions[start].get("to"))
        else:
            options = ["created", *subject.transitions]
            findings.append(
                Finding(
                    (*base, "start"),
                    f"unknown start {describe(start)}; allowed: 'created' or a transition of "
                    f"{entity_name}: {allowed(options)}{suggestion(start, options)}",
                )
            )
    for key in ("succeed", "fail"):
        name = _str(saga.get(key))
        if name is None:
            continue
        if name not in subject.transitions:
            options = list(subject.transitions)
            findings.append(
                Finding(
                    (*base, key),
                    f"unknown transition '{name}'; '{key}' must be a transition of {entity_name}: "
                    f"{allowed(options)}{suggestion(name, options)}",
                )
            )
        elif state is not None and state not in subject.sources(name):
            findings.append(
                Finding(
                    (*base, key),
                    f"transition '{name}' is only allowed from {allowed(subject.sources(name))}, "
                    f"but the saga runs while {entity_name} is {state} (the state it starts in)",
                )
            )
    succeed, fail = _str(saga.get("succeed")), _str(saga.get("fail"))
    if succeed is not None and succeed == fail:
        findings.append(
            Finding((*base, "fail"), f"'fail' must differ from 'succeed' (both are '{succeed}')")
        )
    return findings


def _saga_steps(
    base: Path, saga: dict[str, object], offered: dict[tuple[str, str], list[str]]
) -> list[Finding]:
    findings: list[Finding] = []
    creates: dict[str, tuple[str, str]] = {}  # step name -> (service, Entity) it created
    seen: list[str] = []
    for index, step in enumerate(_list(saga.get("steps"))):
        if not isinstance(step, dict):
            continue
        path: Path = (*base, "steps", index)
        findings += _unique_name(path, step, seen, "step")
        name = _str(step.get("name"))
        do = _operation(step.get("do"))
        undo = _operation(step.get("undo"))
        target = _str(step.get("target"))
        if do is not None:
            findings += _listed((*path, "do"), do, offered)
            service, entity, operation = do
            if operation in OPERATIONS and operation != "create":
                findings.append(
                    Finding(
                        (*path, "do"),
                        f"a step does 'create' or a transition, not '{operation}' (a saga step "
                        "must change something that can be undone)",
                    )
                )
            elif operation == "create":
                if target is not None:
                    findings.append(
                        Finding(
                            (*path, "target"),
                            "'target' is for a transition step (the row it moves); a create step "
                            "makes its own row: remove 'target'",
                            at="key",
                        )
                    )
                if name is not None:
                    creates[name] = (service, entity)
            else:
                findings += _target(path, target, (service, entity), creates)
        if undo is not None:
            findings += _listed((*path, "undo"), undo, offered)
            if do is not None and undo[:2] != do[:2]:
                findings.append(
                    Finding(
                        (*path, "undo"),
                        f"'undo' acts on the row of the step: it must name {do[0]}.{do[1]}, "
                        f"not {undo[0]}.{undo[1]}",
                    )
                )
            if undo[2] in OPERATIONS and undo[2] not in UNDO_OPERATIONS:
                findings.append(
                    Finding(
                        (*path, "undo"),
                        f"'undo' is a transition or 'delete', not '{undo[2]}'",
                    )
                )
        findings += _durations(path, step)
    return findings


def _operation(value: object) -> tuple[str, str, str] | None:
    if not isinstance(value, str) or re.fullmatch(STEP_OPERATION_PATTERN, value) is None:
        return None
    service, entity, operation = value.split(".")
    return service, entity, operation


def _listed(
    path: Path, operation: tuple[str, str, str], offered: dict[tuple[str, str], list[str]]
) -> list[Finding]:
    service, entity, name = operation
    if (service, entity) not in offered:
        known = [f"{s}.{e}" for s, e in offered]
        return [
            Finding(
                path,
                f"'{service}.{entity}' is not in depends_on; add "
                f"{{service: {service}, entity: {entity}, operations: [{name}]}} "
                f"(depends_on lists: {allowed(known)})",
            )
        ]
    operations = offered[(service, entity)]
    if name not in operations:
        return [
            Finding(
                path,
                f"operation '{name}' of {service}.{entity} is not in its depends_on operations "
                f"({allowed(operations)}); add it there{suggestion(name, operations)}",
            )
        ]
    return []


def _target(
    path: Path,
    target: str | None,
    provider: tuple[str, str],
    creates: dict[str, tuple[str, str]],
) -> list[Finding]:
    candidates = [name for name, made in creates.items() if made == provider]
    if target is None:
        return [
            Finding(
                (*path, "target"),
                f"a transition step needs 'target': the earlier create step of "
                f"{provider[0]}.{provider[1]} whose row it moves (candidates: "
                f"{allowed(candidates)})",
                at="parent",
            )
        ]
    if target not in candidates:
        return [
            Finding(
                (*path, "target"),
                f"'target' must name an earlier step that creates a {provider[0]}.{provider[1]} "
                f"(candidates: {allowed(candidates)}){suggestion(target, candidates)}",
            )
        ]
    return []


def _durations(path: Path, step: dict[str, object]) -> list[Finding]:
    values: dict[str, float] = {}
    for key, default in (("timeout", "10s"), ("deadline", "2m")):
        text = step.get(key, default)
        if isinstance(text, str) and re.fullmatch(DURATION_PATTERN, text):
            values[key] = duration_seconds(text)
    if len(values) == 2 and values["timeout"] > values["deadline"]:
        return [
            Finding(
                (*path, "timeout"),
                f"timeout ({step.get('timeout', '10s')}) is longer than the deadline "
                f"({step.get('deadline', '2m')}); a step is retried until its deadline",
            )
        ]
    return []
