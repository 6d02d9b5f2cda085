"""Request bodies of the `book` saga (the test's code overlay of src/booking_service/sagas/)."""

from collections.abc import Mapping
from typing import Any

from ..clients.base import Record
from ..models.trip import Trip

PRICE_PER_NIGHT = 100


async def hold_room(trip: Trip, earlier: Mapping[str, Record]) -> dict[str, Any]:
    """A hold of the trip's nights."""
    return {"trip_id": str(trip.id), "nights": trip.nights}


async def charge(trip: Trip, earlier: Mapping[str, Record]) -> dict[str, Any]:
    """The price of the nights held."""
    nights = int(earlier["hold_room"].fields["nights"])
    return {"trip_id": str(trip.id), "amount": nights * PRICE_PER_NIGHT}
