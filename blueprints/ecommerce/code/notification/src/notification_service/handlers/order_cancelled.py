"""Handler of `order.OrderCancel` events: tells the customer their order was cancelled, and why.
Yours: created once, never overwritten by `copier update`. The plumbing calls it once per event
id."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from .notify import known_email, notify


async def order_cancelled(event: EventEnvelope, session: AsyncSession) -> None:
    """A cancellation notice to the order's customer, with the reason."""
    order = event.payload
    customer = uuid.UUID(str(order["customer_id"]))
    reason = order.get("cancel_reason") or "no reason given"
    await notify(
        session,
        event,
        recipient_id=customer,
        email=await known_email(session, customer),
        kind="ORDER_CANCELLED",
        subject=f"Your order {order['id']} was cancelled",
        body=f"Sorry: your order {order['id']} was cancelled ({reason}).\n",
    )
