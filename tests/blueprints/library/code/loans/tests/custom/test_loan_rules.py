"""The library's lending rules (the blueprint's code overlay): a loan lasts at most
MAX_LOAN_DAYS days.

Yours: copied once by `microforge blueprint`, never overwritten by `copier update`.
"""

import datetime as dt

from fastapi.testclient import TestClient

from loans_service.hooks.loan import MAX_LOAN_DAYS

from ..factories import Factory
from ..support import assert_problem


def test_a_loan_due_too_late_is_refused(client: TestClient, factory: Factory) -> None:
    late = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=MAX_LOAN_DAYS + 1)
    response = client.post("/v1/loans", json=factory.loan_body(due_on=late.isoformat()))
    problem = assert_problem(response, 422, "due_on")
    assert str(MAX_LOAN_DAYS) in response.text, problem


def test_a_loan_due_in_time_is_created(client: TestClient, factory: Factory) -> None:
    due = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=MAX_LOAN_DAYS)
    created = factory.create_loan(due_on=due.isoformat())
    assert created["due_on"] == due.isoformat()
    assert created["status"] == "OPEN"
