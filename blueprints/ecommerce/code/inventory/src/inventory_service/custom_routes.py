"""No routes of its own: the inventory's expiry of reservations, run with the app.

While the app runs, every RESERVATION_SWEEP_SECONDS (0: never) the HELD reservations whose
`expires_at` has passed take their `expire` transition (through the repository, so the
Reservation hooks give their stock back and the event is published), one transaction each; a
reservation committed or released meanwhile is left as it is.

Yours (the e-commerce blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .database import utcnow
from .logs import get_logger
from .models.reservation import Reservation
from .problems import Conflict, NotFound
from .repositories.reservation import ReservationRepository
from .settings import Settings

_log = get_logger(__name__)
BATCH = 100


async def expire_due_reservations(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> list[uuid.UUID]:
    """Expire the HELD reservations past their expires_at (up to BATCH); the ones expired."""
    async with sessions() as session:
        due = list(
            await session.scalars(
                sa.select(Reservation.id)
                .where(Reservation.status == "HELD", Reservation.expires_at <= utcnow())
                .order_by(Reservation.expires_at)
                .limit(BATCH)
            )
        )
    expired = []
    for reservation_id in due:
        async with sessions() as session:
            repository = ReservationRepository(session, settings=settings)
            with contextlib.suppress(Conflict, NotFound):  # committed or released meanwhile
                await repository.transition(reservation_id, "expire", None)
                expired.append(reservation_id)
    if expired:
        _log.info("reservations expired", count=len(expired))
    return expired


async def _sweep(app: FastAPI, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.reservation_sweep_seconds)
        try:
            await expire_due_reservations(app.state.session_factory, settings)
        except Exception as error:  # the database is away: the next round tries again
            _log.warning("reservations not expired", error=repr(error)[:300])


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's own lifespan (its engine and sessions exist)."""
    settings: Settings = app.state.settings
    if settings.reservation_sweep_seconds <= 0:
        yield
        return
    task = asyncio.create_task(_sweep(app, settings), name="reservation-expiry")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(lifespan=lifespan)
