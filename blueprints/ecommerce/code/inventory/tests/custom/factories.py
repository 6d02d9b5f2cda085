"""The inventory's factory: a reservation the generated tests create reserves a unit of a
product that has stock (the Reservation hooks refuse the generated lines, and take stock), and
expires in a day (not in the past, where the expiry would take it away mid-test).

Yours (the e-commerce blueprint's code overlay): copied once by `microforge blueprint`, never
overwritten by `copier update`.
"""

import datetime
from typing import Any

from ..factories import GeneratedFactory

PLENTY = 1_000_000


class Factory(GeneratedFactory):
    """The generated factory, with reservations of products in stock."""

    def reservation_body(self, **overrides: Any) -> dict[str, Any]:
        body = super().reservation_body(**overrides)
        if "lines" not in overrides:
            stock = self.create_stock_item(on_hand=PLENTY)
            body["lines"] = [{"product_id": stock["product_id"], "quantity": 1}]
        if "expires_at" not in overrides:
            tomorrow = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
            body["expires_at"] = tomorrow.isoformat()
        return body
