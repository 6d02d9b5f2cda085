"""Request bodies of the `checkout` saga (reserve_stock → charge → commit_stock), run for each
Order when it is created.

Yours: created once by microforge, never overwritten by `copier update`. A body must be the
same each time it is made for a run (the saga repeats a call with the same Idempotency-Key):
these read the order row only.
"""

from collections.abc import Mapping
from typing import Any

from ..clients.base import Record
from ..hooks import card_vault
from ..models.order import Order
from ..settings import get_settings

CURRENCY = "EUR"


def reservation_lines(order: Order) -> Any:
    """The order's lines as inventory reserves them: [{product_id, quantity}]."""
    if not isinstance(order.lines, list):
        return order.lines  # an order posted whole (CHECKOUT_FROM_CART=false)
    return [
        {"product_id": line["product_id"], "quantity": line["quantity"]}
        for line in order.lines
        if isinstance(line, dict)
    ]


async def reserve_stock(order: Order, earlier: Mapping[str, Record]) -> dict[str, Any]:
    """Body of `POST /v1/reservations` on the inventory service (step `reserve_stock`)."""
    return {"order_id": str(order.id), "lines": reservation_lines(order)}


async def charge(order: Order, earlier: Mapping[str, Record]) -> dict[str, Any]:
    """Body of `POST /v1/payments` on the payment service (step `charge`): the order's total on
    its card (unsealed from the vault)."""
    secret = card_vault.secret_of(get_settings())
    return {
        "order_id": str(order.id),
        "amount": str(order.total if order.total is not None else "0.00"),
        "currency": CURRENCY,
        "card_number": card_vault.unseal(order.card_number, secret),
    }
