"""A client of a running shop (the e-commerce system started by `microforge run`), through its
gateway: the journey's calls as methods, for the end-to-end tests and the system benchmark."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

DECLINED_CARD = "4000000000000002"
GOOD_CARD = "4242424242424242"


class ShopError(AssertionError):
    """A call answered something the journey did not expect."""


@dataclass
class Shopper:
    email: str
    password: str
    token: str
    user_id: str


class Shop:
    """Calls to the shop's gateway at `base` (e.g. http://127.0.0.1:8080)."""

    def __init__(self, base: str, admin_email: str, admin_password: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30.0)
        self.admin_email = admin_email
        self.admin_password = admin_password
        self._admin: str | None = None

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        expect: int | tuple[int, ...] = (200, 201, 204),
        headers: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        http: httpx.Client | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        client = http or self.http
        response = client.request(method, path, json=json, headers=sent, params=params)
        wanted = (expect,) if isinstance(expect, int) else expect
        if response.status_code not in wanted:
            raise ShopError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response

    # identity ------------------------------------------------------------------------------
    def login(self, email: str, password: str, expect: int = 200) -> httpx.Response:
        return self.call(
            "POST",
            "/api/identity/v1/tokens",
            json={"grant_type": "password", "username": email, "password": password},
            expect=expect,
        )

    @property
    def admin(self) -> str:
        if self._admin is None:
            self._admin = self.login(self.admin_email, self.admin_password).json()["access_token"]
        return self._admin

    def shopper(self) -> Shopper:
        email = f"shopper-{uuid.uuid4().hex[:12]}@example.com"
        password = f"pw-{uuid.uuid4().hex}"
        user = self.call(
            "POST",
            "/api/identity/v1/registrations",
            json={"email": email, "password": password, "display_name": "Shopper"},
            expect=201,
        ).json()
        token = self.login(email, password).json()["access_token"]
        return Shopper(email, password, token, user["id"])

    # catalog and inventory -----------------------------------------------------------------
    def product(self, name: str, price: str, stock: int) -> str:
        """A new product with `stock` units in inventory (its stock item appears through the
        catalog's event)."""
        product_id: str = self.call(
            "POST",
            "/api/catalog/v1/products",
            token=self.admin,
            json={"name": name, "price": price},
            expect=201,
        ).json()["id"]
        item = self.wait(
            lambda: self.stock_item(product_id), what=f"the stock item of product {product_id}"
        )
        self.call(
            "PATCH",
            f"/api/inventory/v1/stock-items/{item['id']}",
            token=self.admin,
            json={"on_hand": stock},
            expect=200,
        )
        return product_id

    def stock_item(self, product_id: str) -> dict[str, Any] | None:
        items = self.call(
            "GET",
            "/api/inventory/v1/stock-items",
            token=self.admin,
            params={"product_id": product_id},
        ).json()["items"]
        return items[0] if items else None

    def on_hand(self, product_id: str) -> int:
        item = self.stock_item(product_id)
        assert item is not None
        return int(item["on_hand"])

    # cart and orders -----------------------------------------------------------------------
    def add_to_cart(self, shopper: Shopper, product_id: str, quantity: int) -> dict[str, Any]:
        return self.call(
            "POST",
            "/api/cart/v1/cart-items",
            token=shopper.token,
            json={"product_id": product_id, "quantity": quantity},
            expect=201,
        ).json()

    def cart(self, shopper: Shopper) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "GET", "/api/cart/v1/cart-items", token=shopper.token
        ).json()["items"]
        return items

    def checkout(
        self, shopper: Shopper, card: str = GOOD_CARD, *, alone: bool = False
    ) -> dict[str, Any]:
        """Place an order from the shopper's cart, as a careful client does: one Idempotency-Key,
        sent again after a 409 or 503 with Retry-After (the first attempt is still being
        served, e.g. after the gateway retried a slow one; the service is saturated). `alone`
        sends it on its own connection (for bursts of simultaneous checkouts from many
        threads)."""
        http = httpx.Client(base_url=self.http.base_url, timeout=60.0) if alone else self.http
        key = uuid.uuid4().hex
        try:
            for _ in range(60):
                response = self.call(
                    "POST",
                    "/api/orders/v1/orders",
                    token=shopper.token,
                    json={"card_number": card},
                    headers={"Idempotency-Key": key},
                    expect=(201, 409, 503),
                    http=http,
                )
                if response.status_code == 201:
                    order: dict[str, Any] = response.json()
                    return order
                if "retry-after" not in response.headers:
                    status = response.status_code
                    raise ShopError(
                        f"POST /api/orders/v1/orders answered {status}: {response.text}"
                    )
                time.sleep(float(response.headers["retry-after"]))
            raise ShopError("POST /api/orders/v1/orders: still in progress after 60 tries")
        finally:
            if alone:
                http.close()

    def order(self, shopper: Shopper, order_id: str) -> dict[str, Any]:
        order: dict[str, Any] = self.call(
            "GET", f"/api/orders/v1/orders/{order_id}", token=shopper.token
        ).json()
        return order

    def settled(self, shopper: Shopper, order_id: str, within: float = 60.0) -> dict[str, Any]:
        """The order once its checkout saga finished (CONFIRMED or CANCELLED)."""

        def done() -> dict[str, Any] | None:
            order = self.order(shopper, order_id)
            return order if order["status"] in {"CONFIRMED", "CANCELLED"} else None

        return self.wait(done, what=f"order {order_id} to settle", within=within)

    def saga(self, shopper: Shopper, order_id: str) -> dict[str, Any]:
        """The checkout saga's run of an order (steps, attempts, errors)."""
        run: dict[str, Any] = self.call(
            "GET", f"/api/orders/v1/orders/{order_id}/saga", token=shopper.token
        ).json()
        return run

    def payments(self, order_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "GET", "/api/payments/v1/payments", token=self.admin, params={"order_id": order_id}
        ).json()["items"]
        return items

    @staticmethod
    def wait(check: Any, *, what: str, within: float = 30.0) -> Any:
        deadline = time.monotonic() + within
        while True:
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                raise ShopError(f"waited {within:.0f} s for {what}")
            time.sleep(0.2)
