"""The graph of a system read from its specs: the events each service publishes, the events it
consumes (with their publisher), and its synchronous calls (`depends_on` and saga steps)."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import ServiceSpec


@dataclass(frozen=True)
class Call:
    """A synchronous call edge: `source` calls `operation` on `entity` of `target`."""

    source: str
    target: str
    entity: str
    operation: str
    saga: bool = False


def event_type(entity: str, event: str) -> str:
    """The published event's type: ``Order`` + ``created`` -> ``OrderCreated``."""
    return entity + "".join(part.capitalize() for part in event.split("_"))


def published(spec: ServiceSpec) -> list[str]:
    """The event types `spec` publishes, in spec order."""
    return [event_type(e.name, ev) for e in spec.entities for ev in e.events]


def consumed(spec: ServiceSpec) -> list[tuple[str, str]]:
    """(publisher, event type) of each event `spec` consumes, in spec order, without repeats."""
    pairs = [tuple(c.event.split(".", 1)) for c in spec.events.consumes]
    return list(dict.fromkeys((source, kind) for source, kind in pairs))


def saga_steps(spec: ServiceSpec) -> list[tuple[str, str, str, str, str]]:
    """(saga, step, 'do'|'undo', `service.Entity.operation`, path) of every saga step."""
    steps: list[tuple[str, str, str, str, str]] = []
    for saga_index, saga in enumerate(spec.sagas):
        for step_index, step in enumerate(saga.steps):
            for action in ("do", "undo"):
                target = getattr(step, action)
                if isinstance(target, str):
                    path = f"sagas[{saga_index}].steps[{step_index}].{action}"
                    steps.append((str(saga.name), str(step.name), action, target, path))
    return steps


def calls(spec: ServiceSpec) -> list[Call]:
    """Every synchronous call `spec` makes: its dependencies' operations, then saga steps."""
    found: list[Call] = []
    for dependency in spec.depends_on:
        for operation in dependency.operations:
            found.append(Call(spec.name, dependency.service, dependency.entity, str(operation)))
    for _saga, _step, _action, target, _path in saga_steps(spec):
        parts = target.split(".")
        if len(parts) == 3:
            found.append(Call(spec.name, parts[0], parts[1], parts[2], saga=True))
    return found
