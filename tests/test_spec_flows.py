"""Ownership and saga rules of the spec: one bad spec per rule, each issue's path, message and
exact position (« marks it), and the format of DESIGN.md's example accepted as it stands."""

from __future__ import annotations

from textwrap import dedent

import pytest
from test_spec_rules import check

from microforge.spec import parse_spec

SUBJECT = """\
name: booking
entities:
  - name: Trip
    owner: {owner}
    fields:
      - {{name: traveller_id, type: uuid}}
      - {{name: destination, type: string, max_length: 80}}
      - {{name: status, type: enum, values: [PENDING, CONFIRMED, CANCELLED], default: PENDING}}
    states:
      field: status
      transitions:
        - {{name: confirm, from: [PENDING], to: CONFIRMED}}
        - {{name: cancel, from: [PENDING], to: CANCELLED}}
        - {{name: reopen, from: [CANCELLED], to: PENDING}}
depends_on:
  - {{service: hotel, entity: Hold, operations: [create, release, commit]}}
  - {{service: bank, entity: Charge, operations: [create, refund]}}
sagas:
  - name: book
    entity: {entity}
    start: {start}
    steps:
      - {{name: hold_room, do: {hold}, undo: hotel.Hold.release}}
      - {{name: charge, do: bank.Charge.create, undo: {refund}, timeout: {timeout}}}
      - {{name: commit_room, do: hotel.Hold.commit{target}}}
    succeed: {succeed}
    fail: cancel
"""

GOOD = {
    "owner": "traveller_id",
    "entity": "Trip",
    "start": "created",
    "hold": "hotel.Hold.create",
    "refund": "bank.Charge.refund",
    "timeout": "5s",
    "target": ", target: hold_room",
    "succeed": "confirm",
}


def spec(**changes: str) -> str:
    return SUBJECT.format(**{**GOOD, **changes})


def test_the_design_example_is_accepted() -> None:
    parsed = parse_spec(spec(), "spec.yaml")
    saga = parsed.sagas[0]
    assert [step.name for step in saga.steps] == ["hold_room", "charge", "commit_room"]
    assert saga.steps[0].timeout == "10s"
    assert saga.steps[0].deadline == "2m"
    assert saga.steps[2].target == "hold_room"
    trip = parsed.entities[0]
    assert trip.owner == "traveller_id"
    assert trip.bypass_scope == "trip:admin"
    assert parsed.depends_on[0].operations == ["create", "release", "commit"]


CASES = [
    (
        "owner-unknown",
        {"owner": "«travller_id"},
        "entities[0].owner",
        "did you mean 'traveller_id'",
    ),
    ("owner-not-uuid", {"owner": "«destination"}, "entities[0].owner", "must name a uuid field"),
    ("subject-unknown", {"entity": "«Tripp"}, "sagas[0].entity", "unknown entity 'Tripp'"),
    ("start-unknown", {"start": "«confrm"}, "sagas[0].start", "did you mean 'confirm'"),
    (
        "succeed-from-wrong-state",
        {"start": "reopen", "succeed": "«reopen"},
        "sagas[0].succeed",
        "only allowed from CANCELLED, but the saga runs while Trip is PENDING",
    ),
    ("succeed-unknown", {"succeed": "«confirmed"}, "sagas[0].succeed", "unknown transition"),
    (
        "step-not-in-depends-on",
        {"hold": "«hotel.Room.create"},
        "sagas[0].steps[0].do",
        "'hotel.Room' is not in depends_on",
    ),
    (
        "step-operation-not-listed",
        {"refund": "«bank.Charge.void"},
        "sagas[0].steps[1].undo",
        "operation 'void' of bank.Charge is not in its depends_on operations",
    ),
    (
        "step-does-a-read",
        {"hold": "«hotel.Hold.read"},
        "sagas[0].steps[0].do",
        "a step does 'create' or a transition, not 'read'",
    ),
    (
        "undo-other-entity",
        {"refund": "«hotel.Hold.release"},
        "sagas[0].steps[1].undo",
        "it must name bank.Charge",
    ),
    (
        "target-not-a-create",
        {"target": ", target: «charge"},
        "sagas[0].steps[2].target",
        "an earlier step that creates a hotel.Hold (candidates: hold_room)",
    ),
    (
        "timeout-past-deadline",
        {"timeout": "«5m"},
        "sagas[0].steps[1].timeout",
        "longer than the deadline",
    ),
    ("bad-duration", {"timeout": "«5 seconds"}, "sagas[0].steps[1].timeout", "invalid duration"),
]


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_rule(changes: dict[str, str], path: str, fragment: str) -> None:
    check(spec(**changes), path, fragment)


def test_a_transition_step_needs_a_target() -> None:
    text = spec(target="")
    issues = check(
        text.replace("      - {name: commit_room", "      - «{name: commit_room"),
        "sagas[0].steps[2].target",
        "a transition step needs 'target'",
    )
    assert "candidates: hold_room" in issues.message


def test_an_owned_entity_has_no_public_operation() -> None:
    text = dedent(
        """\
        name: shop
        entities:
          - name: Cart
            owner: user_id
            fields: [{name: user_id, type: uuid}]
            permissions: {read: «public}
        """
    )
    check(text, "entities[0].permissions.read", "cannot be public")


def test_owner_bypass_needs_an_owner() -> None:
    text = dedent(
        """\
        name: shop
        entities:
          - name: Cart
            «owner_bypass: cart:all
            fields: [{name: user_id, type: uuid}]
        """
    )
    check(text, "entities[0].owner_bypass", "only applies to an entity with an 'owner'")
