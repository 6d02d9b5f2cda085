"""Domain hooks of Order: a checkout is made from the caller's cart; its outcome is written back.

Yours: created once by microforge, never overwritten by `copier update`.

- create (`POST /v1/orders` with `{card_number}`): the lines are the caller's cart items (read
  from cart with the caller's own bearer token, so cart's ownership picks their items), priced
  from catalog (never from the body or the cart); the total is computed here; the card number
  is stored sealed (see `card_vault.py`). `lines`, `total` and `cancel_reason` in the body are
  refused (they are the service's). An empty cart, or a product catalog no longer sells,
  answers 422. With `CHECKOUT_FROM_CART=false` (the generated CRUD tests only) the body is
  stored as sent.
- confirm / cancel (taken by the `checkout` saga, or by an admin): the card number is masked;
  a cancel after a failed checkout gets the reason: "out of stock: <product ids>" when
  inventory refused the reservation, "payment declined" when payment refused the charge.
"""

import re
import uuid
from decimal import Decimal
from typing import Any, ClassVar

import sqlalchemy as sa

from .. import entity_hooks
from ..clients import Clients
from ..clients.errors import NotFound
from ..models.order import Order
from ..saga_runtime.store import SagaRun
from . import card_vault

CARD_PATTERN = re.compile(r"^[0-9]{12,19}$")
UUID_PATTERN = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CENT = Decimal("0.01")
SERVICE_FIELDS = ("lines", "total", "cancel_reason")


def _bearer(ctx: entity_hooks.HookContext) -> str | None:
    """The caller's own token (cart answers with the caller's items only)."""
    assert ctx.request is not None
    scheme, _, token = ctx.request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


async def lines_from_cart(clients: Clients, token: str | None) -> list[dict[str, Any]]:
    """The caller's cart as order lines (one per product), priced from catalog."""
    quantities: dict[uuid.UUID, int] = {}
    async for item in clients.cart_client.iter_cart_item(token=token):
        product_id = uuid.UUID(str(item.fields["product_id"]))
        quantities[product_id] = quantities.get(product_id, 0) + int(item.fields["quantity"])
    if not quantities:
        raise entity_hooks.invalid("cart", "your cart is empty")
    lines = []
    for product_id, quantity in quantities.items():
        try:
            product = await clients.catalog_client.read_product(product_id)
        except NotFound:
            raise entity_hooks.invalid("cart", f"product {product_id} is not sold") from None
        fields = product.fields
        if fields.get("status", "ACTIVE") != "ACTIVE":
            raise entity_hooks.invalid("cart", f"product {product_id} is not sold any more")
        price = Decimal(str(fields["price"])).quantize(CENT)
        lines.append(
            {"product_id": str(product_id), "quantity": quantity, "unit_price": str(price)}
        )
    return lines


def total_of(lines: list[dict[str, Any]]) -> Decimal:
    """The sum of the lines' prices."""
    return sum(
        (Decimal(line["unit_price"]) * int(line["quantity"]) for line in lines), Decimal(0)
    ).quantize(CENT)


def cancel_reason(run: SagaRun | None) -> str | None:
    """Why the checkout run failed, for the customer; None when no checkout failed."""
    if run is None or run.status not in {"COMPENSATING", "FAILED"}:
        return None
    reserve = run.outcome("reserve_stock", "do")
    charge = run.outcome("charge", "do")
    if reserve.get("status") == "refused":
        error = str(reserve.get("error", ""))
        ids = list(dict.fromkeys(UUID_PATTERN.findall(error.lower())))
        if " 409 " in error or ids:
            return "out of stock: " + (", ".join(ids) if ids else error)[:480]
        return f"stock not reserved: {error}"[:500]
    if charge.get("status") == "refused":
        return "payment declined"
    return f"checkout failed: {run.reason or run.last_error or 'unknown'}"[:500]


class OrderHooks(entity_hooks.EntityHooks[Order]):
    """A checkout from the cart; the outcome written back."""

    rewrites: ClassVar[frozenset[str]] = frozenset({"card_number"})

    async def before_create(
        self,
        ctx: entity_hooks.HookContext,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        settings: Any = ctx.settings
        if ctx.request is None or not settings.checks_out_from_cart:
            return values
        for name in SERVICE_FIELDS:
            if values.get(name) is not None:
                raise entity_hooks.invalid(name, "set by the service, not by the caller")
        card = str(values["card_number"])
        if not CARD_PATTERN.fullmatch(card):
            raise entity_hooks.invalid("card_number", "a card number is 12 to 19 digits")
        clients: Clients = ctx.request.app.state.clients
        lines = await lines_from_cart(clients, _bearer(ctx))
        return {
            **values,
            "lines": lines,
            "total": total_of(lines),
            "card_number": card_vault.seal(card, card_vault.secret_of(settings)),
        }

    async def before_transition(
        self,
        ctx: entity_hooks.HookContext,
        row: Order,
        transition: str,
    ) -> None:
        if transition not in {"confirm", "cancel"}:
            return
        secret = card_vault.secret_of(ctx.settings)
        row.card_number = card_vault.mask(card_vault.unseal(row.card_number, secret))
        if transition == "cancel" and row.cancel_reason is None:
            runs = sa.select(SagaRun).where(
                SagaRun.saga == "checkout", SagaRun.subject_id == row.id
            )
            run = (await ctx.session.scalars(runs)).first()
            row.cancel_reason = cancel_reason(run)
