"""Domain hooks of Hold (the test's code overlay): no hold longer than 30 nights."""

from typing import Any

from .. import entity_hooks
from ..models.hold import Hold

LONGEST_STAY = 30


class HoldHooks(entity_hooks.EntityHooks[Hold]):
    """Refuses holds past the longest stay."""

    async def before_create(
        self, ctx: entity_hooks.HookContext, values: dict[str, Any]
    ) -> dict[str, Any]:
        if values["nights"] > LONGEST_STAY:
            raise entity_hooks.invalid("nights", f"no room for more than {LONGEST_STAY} nights")
        return values
