"""Domain hooks of Reservation: a reservation takes the stock of its lines, atomically.

- create: the lines are checked (a list of 1 to MAX_LINES `{product_id, quantity}` objects,
  1 <= quantity <= MAX_QUANTITY; other keys of a line are dropped, lines of the same product are
  added up) and each product's `on_hand` is lowered by a conditional
  `UPDATE stock_items SET on_hand = on_hand - q WHERE product_id = p AND on_hand >= q`, in the
  write's own transaction and in product id order (so that two reservations never wait for
  each other's rows): stock never goes negative, on SQLite and PostgreSQL alike. When a product
  has too little stock (or none: no StockItem), nothing is taken and the answer is 409
  problem+json whose detail reads `out of stock: <ids>` and whose `short_products` lists them.
  `expires_at` is at most RESERVATION_TTL_SECONDS from now (the setting's value when the body
  gives none or a later one).
- release and expire give the lines' stock back (in the transition's transaction); commit keeps
  it taken. `custom_routes.py` expires HELD reservations whose `expires_at` has passed.

Yours (the e-commerce blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from .. import entity_hooks
from ..database import utcnow
from ..models.reservation import Reservation
from ..models.stock_item import StockItem
from ..problems import Conflict

MAX_LINES = 100
MAX_QUANTITY = 1_000_000
GIVE_BACK = frozenset({"release", "expire"})
"""Transitions that return a reservation's stock."""

Lines = dict[uuid.UUID, int]
"""Quantity wanted per product."""


def parse_lines(raw: Any) -> Lines:
    """The quantity of each product of a reservation's `lines`, or a 422 problem naming the
    offending line."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_LINES:
        raise entity_hooks.invalid(
            "lines", f"a list of 1 to {MAX_LINES} {{product_id, quantity}} objects"
        )
    wanted: Lines = {}
    for index, line in enumerate(raw):
        where = f"lines.{index}"
        if not isinstance(line, Mapping):
            raise entity_hooks.invalid(where, "an object with product_id and quantity")
        product = line.get("product_id")
        try:
            product_id = uuid.UUID(product) if isinstance(product, str) else None
        except ValueError:
            product_id = None
        if product_id is None:
            raise entity_hooks.invalid(f"{where}.product_id", "a product id (UUID)")
        quantity = line.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int):
            raise entity_hooks.invalid(f"{where}.quantity", "an integer")
        if not 1 <= quantity <= MAX_QUANTITY:
            raise entity_hooks.invalid(f"{where}.quantity", f"from 1 to {MAX_QUANTITY}")
        wanted[product_id] = wanted.get(product_id, 0) + quantity
        if wanted[product_id] > MAX_QUANTITY:
            raise entity_hooks.invalid(f"{where}.quantity", f"at most {MAX_QUANTITY} in all")
    return wanted


def stored_lines(raw: Any) -> Lines:
    """The lines of a stored reservation (written by `before_create`, so valid)."""
    wanted: Lines = {}
    for line in raw if isinstance(raw, list) else []:
        wanted[uuid.UUID(str(line["product_id"]))] = int(line["quantity"])
    return wanted


async def take_stock(session: AsyncSession, wanted: Lines) -> list[uuid.UUID]:
    """Lower every product's on_hand by its quantity where there is enough; the products that
    had too little (their stock untouched; roll back the others when this is not empty)."""
    short = []
    for product_id in sorted(wanted):
        quantity = wanted[product_id]
        statement = (
            sa.update(StockItem)
            .where(StockItem.product_id == product_id, StockItem.on_hand >= quantity)
            .values(
                on_hand=StockItem.on_hand - quantity,
                version=StockItem.version + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        result: Any = await session.execute(statement)
        if result.rowcount != 1:
            short.append(product_id)
    return short


async def give_back(session: AsyncSession, wanted: Lines) -> None:
    """Raise every product's on_hand by its quantity (a product whose StockItem is gone has
    nothing to get back)."""
    for product_id in sorted(wanted):
        statement = (
            sa.update(StockItem)
            .where(StockItem.product_id == product_id)
            .values(
                on_hand=StockItem.on_hand + wanted[product_id],
                version=StockItem.version + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        await session.execute(statement)


class ReservationHooks(entity_hooks.EntityHooks[Reservation]):
    """Stock taken by create, given back by release and expire."""

    async def before_create(
        self,
        ctx: entity_hooks.HookContext,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        """Check the lines, cap expires_at, take the stock (409 naming the short products)."""
        wanted = parse_lines(values.get("lines"))
        values["lines"] = [
            {"product_id": str(product_id), "quantity": quantity}
            for product_id, quantity in sorted(wanted.items())
        ]
        ttl = datetime.timedelta(seconds=ctx.settings.reservation_ttl_seconds)
        latest = utcnow() + ttl
        expires_at = values.get("expires_at")
        if not isinstance(expires_at, datetime.datetime) or expires_at > latest:
            values["expires_at"] = latest
        short = await take_stock(ctx.session, wanted)
        if short:
            await ctx.session.rollback()  # the lines taken before the short one, and the locks
            ids = [str(product_id) for product_id in short]
            raise Conflict(f"out of stock: {', '.join(ids)}", short_products=ids)
        return values

    async def before_transition(
        self,
        ctx: entity_hooks.HookContext,
        row: Reservation,
        transition: str,
    ) -> None:
        """Release and expire give the stock back, with the move (it is HELD: the state check
        ran; a concurrent move makes this attempt roll back, give-back included)."""
        if transition in GIVE_BACK:
            await give_back(ctx.session, stored_lines(row.lines))
