"""Domain hooks of CartItem: the unit price is the catalog's, read when the item is added.

- create: `unit_price` comes from the catalog service (`GET /v1/products/{product_id}` through
  the generated catalog client), never from the body: a body that sets it gets 422. A product
  the catalog does not know, or that is not ACTIVE, is refused with 422 naming `product_id`;
  the catalog away answers 503 (the generated client's errors), a catalog answer without a
  usable price 502.
- update: `unit_price` cannot be set either; a new `product_id` takes that product's price.

Yours (the e-commerce blueprint's code overlay): copied once into the service by `microforge
blueprint`, never overwritten by `copier update`.
"""

import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from .. import entity_hooks
from ..clients import Clients
from ..clients.errors import NotFound as ProductNotFound
from ..models.cart_item import CartItem
from ..problems import Problem, Unprocessable

ON_SALE = "ACTIVE"
HIGHEST_PRICE = Decimal("99999999.99")
"""What unit_price (decimal 10,2) can hold."""


class BadGateway(Problem):
    status = 502
    title = "Bad Gateway"


def _price_refused() -> Unprocessable:
    return entity_hooks.invalid(
        "unit_price", "set from the catalog's price when the item is added; do not send it"
    )


async def catalog_price(ctx: entity_hooks.HookContext, product_id: uuid.UUID) -> Decimal:
    """The price of an ACTIVE product of the catalog, or a problem."""
    if ctx.request is None:
        raise RuntimeError("a cart item's price is read within a request")
    clients: Clients = ctx.request.app.state.clients
    try:
        product = await clients.catalog_client.read_product(product_id)
    except ProductNotFound:
        raise entity_hooks.invalid("product_id", "no such product in the catalog") from None
    fields = product.fields
    status = fields.get("status", ON_SALE)
    if status != ON_SALE:
        raise entity_hooks.invalid("product_id", f"the product is not on sale ({status})")
    raw = fields.get("price")
    try:
        price = Decimal(str(raw)) if isinstance(raw, str | int | float) else None
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or not 0 <= price <= HIGHEST_PRICE:
        raise BadGateway(f"The catalog answered product {product_id} without a usable price.")
    return price.quantize(Decimal("0.01"))


class CartItemHooks(entity_hooks.EntityHooks[CartItem]):
    """Prices from the catalog."""

    async def before_create(
        self,
        ctx: entity_hooks.HookContext,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        """Refuse a unit_price in the body; set the catalog's."""
        if values.get("unit_price") is not None:
            raise _price_refused()
        values["unit_price"] = await catalog_price(ctx, values["product_id"])
        return values

    async def before_update(
        self,
        ctx: entity_hooks.HookContext,
        row: CartItem,
        changes: dict[str, Any],
    ) -> dict[str, Any]:
        """Refuse a unit_price; another product brings its own price."""
        if "unit_price" in changes:
            raise _price_refused()
        product_id = changes.get("product_id")
        if product_id is not None and product_id != row.product_id:
            changes["unit_price"] = await catalog_price(ctx, product_id)
        return changes
