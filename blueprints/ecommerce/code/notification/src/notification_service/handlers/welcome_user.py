"""Handler of `identity.UserCreated` events: a welcome message to the new user. Yours: created
once, never overwritten by `copier update`. The plumbing calls it once per event id."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from .notify import notify


async def welcome_user(event: EventEnvelope, session: AsyncSession) -> None:
    """Welcome the user the event created (their address is kept for later messages)."""
    user = event.payload
    name = user.get("display_name") or user.get("email") or "there"
    await notify(
        session,
        event,
        recipient_id=uuid.UUID(str(user.get("id", event.aggregate_id))),
        email=user.get("email"),
        kind="WELCOME",
        subject="Welcome to the shop",
        body=f"Hello {name},\n\nyour account is ready. Happy shopping!\n",
    )
