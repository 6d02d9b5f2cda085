"""Handler of `catalog.ProductCreated` events: every product of the catalog gets its StockItem,
with nothing on hand (an admin adds stock with `PATCH /v1/stock-items/{id}`).

Idempotent: a product that already has a StockItem (the same event again, or an admin created
it first) keeps it unchanged; two deliveries racing on the unique `product_id` end with one row
(the loser's attempt rolls back on the constraint and is retried, and then finds the row).

Yours (the e-commerce blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from ..logs import get_logger
from ..models.stock_item import StockItem

_log = get_logger(__name__)


async def track_product(event: EventEnvelope, session: AsyncSession) -> None:
    """Create the StockItem of the event's product (on_hand 0) unless it exists."""
    raw = event.payload.get("id", event.aggregate_id)
    try:
        product_id = uuid.UUID(str(raw))
    except ValueError:
        _log.warning("ProductCreated without a valid product id", product_id=str(raw)[:100])
        return
    existing = await session.scalar(
        sa.select(StockItem.id).where(StockItem.product_id == product_id)
    )
    if existing is None:
        session.add(StockItem(product_id=product_id, on_hand=0))
        _log.info("stock item created", product_id=str(product_id))
