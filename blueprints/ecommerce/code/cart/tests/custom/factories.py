"""The cart's factory: the bodies of cart items leave `unit_price` out (the hook sets it from
the catalog and refuses one in the body).

Yours (the e-commerce blueprint's code overlay): copied once by `microforge blueprint`, never
overwritten by `copier update`.
"""

from typing import Any

from ..factories import GeneratedFactory


class Factory(GeneratedFactory):
    """The generated factory, without prices in cart item bodies."""

    def cart_item_body(self, **overrides: Any) -> dict[str, Any]:
        body = super().cart_item_body(**overrides)
        if "unit_price" not in overrides:
            body.pop("unit_price", None)
        return body
