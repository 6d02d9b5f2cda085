"""The checkout end to end: a customer's order made from their cart (stand-in cart and catalog),
then the `checkout` saga run by the app's own runner against stand-in inventory and payment
services on loopback that keep stock and captures like the real ones (Idempotency-Key
honoured): success, a declined card, an out-of-stock product, and the refusals of a create."""

import asyncio
import contextlib
import datetime
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from order_service.security import issue_dev_token
from order_service.settings import Settings

from ..contract.provider import serve

DECLINED_CARD = "4000000000000002"
GOOD_CARD = "4242424242424242"
ENDED = ("SUCCEEDED", "FAILED", "STUCK")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _row(**fields: Any) -> dict[str, Any]:
    now = _now()
    return {"id": str(uuid.uuid4()), "version": 1, "created_at": now, "updated_at": now, **fields}


def _problem(status: int, detail: str) -> Response:
    body = {"type": "about:blank", "title": "Refused", "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class Shop:
    """Stand-ins of cart, catalog, inventory and payment with the shop's rules."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.carts: dict[str, list[dict[str, Any]]] = {}
        """Cart items by the bearer token that owns them."""
        self.cart_tokens: list[str] = []
        self.products: dict[str, dict[str, Any]] = {}
        self.stock: dict[str, int] = {}
        self.reservations: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.charge_bodies: list[dict[str, Any]] = []
        self.replies: dict[str, tuple[int, Any]] = {}
        self.app = FastAPI()
        self.app.add_api_route("/v1/cart-items", self.cart_items, methods=["GET"])
        self.app.add_api_route("/v1/products/{product_id}", self.product, methods=["GET"])
        self.app.add_api_route("/v1/reservations", self.reserve, methods=["POST"])
        self.app.add_api_route("/v1/reservations/{row}/{move}", self.move, methods=["POST"])
        self.app.add_api_route("/v1/payments", self.charge, methods=["POST"])
        self.app.add_api_route("/v1/payments/{row}/refund", self.refund, methods=["POST"])

    def product_on_sale(self, price: str, stock: int) -> str:
        product = _row(name="thing", price=price, status="ACTIVE")
        self.products[product["id"]] = product
        self.stock[product["id"]] = stock
        return str(product["id"])

    async def cart_items(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        self.cart_tokens.append(token)
        return JSONResponse({"items": self.carts.get(token, []), "next_cursor": None})

    async def product(self, product_id: str) -> Response:
        found = self.products.get(product_id)
        return JSONResponse(found) if found else _problem(404, "no such product")

    def _once(self, request: Request, effect: Any) -> Response:
        key = request.headers.get("idempotency-key") or str(uuid.uuid4())
        with self.lock:
            if key not in self.replies:
                self.replies[key] = effect()
            status, body = self.replies[key]
        if status >= 400:
            return _problem(status, body)
        return JSONResponse(body, status_code=status)

    async def reserve(self, request: Request) -> Response:
        body = await request.json()

        def effect() -> tuple[int, Any]:
            lines = body["lines"]
            short = [
                line["product_id"]
                for line in lines
                if self.stock.get(line["product_id"], 0) < line["quantity"]
            ]
            if short:
                return 409, f"not enough stock of {', '.join(short)}"
            for line in lines:
                self.stock[line["product_id"]] -= line["quantity"]
            row = _row(order_id=body["order_id"], lines=lines, status="HELD")
            self.reservations[row["id"]] = row
            return 201, row

        return self._once(request, effect)

    async def move(self, request: Request, row: str, move: str) -> Response:
        def effect() -> tuple[int, Any]:
            reservation = self.reservations.get(row)
            if reservation is None:
                return 404, "no such reservation"
            if reservation["status"] != "HELD":
                return 409, f"reservation is {reservation['status']}"
            if move == "release":
                for line in reservation["lines"]:
                    self.stock[line["product_id"]] += line["quantity"]
            reservation["status"] = {"release": "RELEASED", "commit": "COMMITTED"}[move]
            reservation["version"] += 1
            return 200, dict(reservation)

        return self._once(request, effect)

    async def charge(self, request: Request) -> Response:
        body = await request.json()

        def effect() -> tuple[int, Any]:
            self.charge_bodies.append(body)
            if body["card_number"] == DECLINED_CARD:
                return 422, "payment declined: the card was declined"
            row = _row(order_id=body["order_id"], amount=body["amount"], status="CAPTURED")
            self.payments[row["id"]] = row
            return 201, row

        return self._once(request, effect)

    async def refund(self, request: Request, row: str) -> Response:
        def effect() -> tuple[int, Any]:
            self.payments[row]["status"] = "REFUNDED"
            return 200, dict(self.payments[row])

        return self._once(request, effect)


@pytest.fixture
def shop() -> Iterator[Shop]:
    stand_in = Shop()
    with contextlib.ExitStack() as stack:
        stand_in.url = stack.enter_context(serve(stand_in.app))  # type: ignore[attr-defined]
        yield stand_in


@pytest.fixture
def settings(settings: Settings, shop: Shop) -> Settings:
    """The app calls the stand-ins, checks out from the cart, and runs sagas promptly."""
    url: str = shop.url  # type: ignore[attr-defined]
    services = ("cart", "catalog", "inventory", "payment")
    urls = {f"{name}_service_url": url for name in services}
    return settings.model_copy(
        update={**urls, "checkout_from_cart": True, "saga_poll_seconds": 0.05}
    )


def customer(settings: Settings, shop: Shop, items: list[tuple[str, int]]) -> dict[str, str]:
    """A customer's headers, their cart holding `items` (product id, quantity)."""
    subject = str(uuid.uuid4())
    token = issue_dev_token(settings, ["customer"], subject=subject)
    shop.carts[token] = [
        _row(customer_id=subject, product_id=product, quantity=quantity, unit_price="0.01")
        for product, quantity in items
    ]
    return {"Authorization": f"Bearer {token}"}


def checkout(client: TestClient, headers: dict[str, str], card: str = GOOD_CARD) -> Any:
    response = client.post("/v1/orders", json={"card_number": card}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def settled(client: TestClient, order_id: str, seconds: float = 30.0) -> dict[str, Any]:
    """The order once its checkout ended (the app's own runner moves it)."""
    portal: Any = client.portal
    for _ in range(int(seconds / 0.05)):
        saga = client.get(f"/v1/orders/{order_id}/saga").json()
        if saga.get("status") in ENDED:
            order: dict[str, Any] = client.get(f"/v1/orders/{order_id}").json()
            return order
        portal.call(asyncio.sleep, 0.05)
    raise AssertionError(f"the checkout did not end: {client.get(f'/v1/orders/{order_id}/saga')}")


def test_a_checkout_is_priced_from_catalog_and_confirmed(
    client: TestClient, settings: Settings, shop: Shop
) -> None:
    mug = shop.product_on_sale("12.50", stock=5)
    tea = shop.product_on_sale("3.20", stock=5)
    alice = customer(settings, shop, [(mug, 2), (tea, 1), (mug, 1)])
    created = checkout(client, alice)
    assert created["status"] == "PENDING"
    assert created["total"] == "40.70"  # 3 x 12.50 + 3.20, never the cart's unit_price
    assert {line["product_id"]: line["quantity"] for line in created["lines"]} == {mug: 3, tea: 1}
    assert GOOD_CARD not in str(created)  # sealed while pending
    assert shop.cart_tokens == [alice["Authorization"].removeprefix("Bearer ")]
    order = settled(client, created["id"])
    assert order["status"] == "CONFIRMED", order
    assert order["card_number"] == "*" * 12 + "4242"
    assert order["cancel_reason"] is None
    assert shop.stock == {mug: 2, tea: 4}
    assert [r["status"] for r in shop.reservations.values()] == ["COMMITTED"]
    assert [(p["amount"], p["status"]) for p in shop.payments.values()] == [("40.70", "CAPTURED")]
    assert shop.charge_bodies[0]["card_number"] == GOOD_CARD
    mine = client.get("/v1/orders", headers=alice).json()["items"]
    assert [item["id"] for item in mine] == [created["id"]]


def test_a_declined_card_cancels_releases_the_stock_and_captures_nothing(
    client: TestClient, settings: Settings, shop: Shop
) -> None:
    mug = shop.product_on_sale("12.50", stock=5)
    order = settled(
        client, checkout(client, customer(settings, shop, [(mug, 2)]), DECLINED_CARD)["id"]
    )
    assert order["status"] == "CANCELLED", order
    assert order["cancel_reason"] == "payment declined"
    assert order["card_number"] == "*" * 12 + "0002"
    assert shop.stock == {mug: 5}
    assert [r["status"] for r in shop.reservations.values()] == ["RELEASED"]
    assert shop.payments == {}


def test_out_of_stock_cancels_with_the_short_products(
    client: TestClient, settings: Settings, shop: Shop
) -> None:
    mug = shop.product_on_sale("12.50", stock=1)
    tea = shop.product_on_sale("3.20", stock=9)
    order = settled(client, checkout(client, customer(settings, shop, [(mug, 2), (tea, 1)]))["id"])
    assert order["status"] == "CANCELLED", order
    assert order["cancel_reason"] == f"out of stock: {mug}"
    assert shop.stock == {mug: 1, tea: 9}
    assert shop.charge_bodies == []


def test_an_empty_cart_or_a_product_gone_is_refused(
    client: TestClient, settings: Settings, shop: Shop
) -> None:
    response = client.post(
        "/v1/orders", json={"card_number": GOOD_CARD}, headers=customer(settings, shop, [])
    )
    assert response.status_code == 422, response.text
    assert "empty" in response.text
    gone = str(uuid.uuid4())
    headers = customer(settings, shop, [(gone, 1)])
    response = client.post("/v1/orders", json={"card_number": GOOD_CARD}, headers=headers)
    assert response.status_code == 422, response.text
    assert gone in response.text
    assert client.get("/v1/orders").json()["items"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("total", "0.01"), ("lines", [{"product_id": str(uuid.uuid4()), "quantity": 1}])],
)
def test_a_customer_cannot_set_lines_or_total(
    client: TestClient, settings: Settings, shop: Shop, field: str, value: Any
) -> None:
    mug = shop.product_on_sale("12.50", stock=5)
    headers = customer(settings, shop, [(mug, 1)])
    body = {"card_number": GOOD_CARD, field: value}
    response = client.post("/v1/orders", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert field in response.text


def test_a_card_number_must_be_digits(client: TestClient, settings: Settings, shop: Shop) -> None:
    mug = shop.product_on_sale("12.50", stock=5)
    body = {"card_number": "4242-4242-4242"}
    response = client.post("/v1/orders", json=body, headers=customer(settings, shop, [(mug, 1)]))
    assert response.status_code == 422, response.text
    assert Decimal(0) == Decimal(len(client.get("/v1/orders").json()["items"]))
