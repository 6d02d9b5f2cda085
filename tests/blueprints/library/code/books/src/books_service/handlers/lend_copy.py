"""Handler of `loans.LoanCreated` events: one copy of the lent book is no longer on the shelf.

Yours (the library blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ..events.envelope import EventEnvelope
from ..logs import get_logger
from ..models.book import Book

_log = get_logger(__name__)


async def lend_copy(event: EventEnvelope, session: AsyncSession) -> None:
    """Take one copy of the loan's book off the shelf (never below zero)."""
    raw = event.payload.get("book_id")
    try:
        book_id = uuid.UUID(str(raw))
    except ValueError:
        _log.warning("loan without a valid book_id", book_id=str(raw))
        return
    statement = (
        update(Book)
        .where(Book.id == book_id, Book.copies > 0)
        .values(copies=Book.copies - 1, version=Book.version + 1)
    )
    await session.execute(statement)
