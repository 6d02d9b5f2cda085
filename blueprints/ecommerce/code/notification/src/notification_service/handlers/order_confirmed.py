"""Handler of `order.OrderConfirm` events: tells the customer their order is confirmed. Yours:
created once, never overwritten by `copier update`. The plumbing calls it once per event id."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from .notify import known_email, notify


async def order_confirmed(event: EventEnvelope, session: AsyncSession) -> None:
    """A confirmation to the order's customer, with its total."""
    order = event.payload
    customer = uuid.UUID(str(order["customer_id"]))
    await notify(
        session,
        event,
        recipient_id=customer,
        email=await known_email(session, customer),
        kind="ORDER_CONFIRMED",
        subject=f"Your order {order['id']} is confirmed",
        body=f"Thank you! Your order {order['id']} of {order.get('total')} is confirmed.\n",
    )
