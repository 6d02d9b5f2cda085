"""Domain hooks of Loan: a loan is due at most MAX_LOAN_DAYS days from today.

Yours (the library blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

import datetime as dt
from typing import Any

from .. import entity_hooks
from ..models.loan import Loan

MAX_LOAN_DAYS = 120


class LoanHooks(entity_hooks.EntityHooks[Loan]):
    """Hooks of every write of a Loan."""

    async def before_create(
        self,
        ctx: entity_hooks.HookContext,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        """Refuse a due date more than MAX_LOAN_DAYS days ahead (422 naming `due_on`)."""
        due_on = values.get("due_on")
        latest = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=MAX_LOAN_DAYS)
        if isinstance(due_on, dt.date) and due_on > latest:
            raise entity_hooks.invalid("due_on", f"a loan lasts at most {MAX_LOAN_DAYS} days")
        return values
