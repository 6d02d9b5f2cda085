"""Handler of `order.OrderConfirm` events: every two distinct products of a confirmed order were
bought together once more. Yours: created once, never overwritten by `copier update`.

The plumbing (`events/consumers.py`) calls `learn_pairs` once per event id, in the transaction
that records the event as processed: a redelivered event counts nothing twice. Each ordered pair
(a, b) and (b, a) has its own row, so `GET /v1/recommendations?product_id=a` reads one index.
"""

import itertools
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from ..logs import get_logger
from ..models.pair import Pair

_log = get_logger(__name__)


def products_of(payload: dict[str, Any]) -> list[uuid.UUID]:
    """The distinct product ids of an order's lines (lines that are not well formed skipped)."""
    lines = payload.get("lines")
    found: dict[uuid.UUID, None] = {}
    for line in lines if isinstance(lines, list) else []:
        try:
            found[uuid.UUID(str(line["product_id"]))] = None
        except (KeyError, TypeError, ValueError):
            continue
    return sorted(found)


async def learn_pairs(event: EventEnvelope, session: AsyncSession) -> None:
    """Count each pair of products of the confirmed order."""
    products = products_of(event.payload)
    for product_id, other_id in itertools.permutations(products, 2):
        found = await session.scalar(
            sa.select(Pair).where(Pair.product_id == product_id, Pair.other_id == other_id)
        )
        if found is None:
            session.add(Pair(product_id=product_id, other_id=other_id, count=1))
        else:
            found.count += 1
    _log.info("order learnt", order_id=str(event.aggregate_id), products=len(products))
