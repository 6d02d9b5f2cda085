"""Domain hooks of Charge (the test's code overlay): a card limit, and a slow card network for one
amount (so that a test can kill the caller while the charge is being made)."""

import asyncio
from typing import Any

from .. import entity_hooks
from ..models.charge import Charge

CARD_LIMIT = 2000
SLOW_AMOUNT = 1300


class ChargeHooks(entity_hooks.EntityHooks[Charge]):
    """Declines charges over the card limit."""

    async def before_create(
        self, ctx: entity_hooks.HookContext, values: dict[str, Any]
    ) -> dict[str, Any]:
        if values["amount"] > CARD_LIMIT:
            raise entity_hooks.invalid("amount", f"declined: over the card limit of {CARD_LIMIT}")
        if values["amount"] == SLOW_AMOUNT:
            await asyncio.sleep(3)
        return values
