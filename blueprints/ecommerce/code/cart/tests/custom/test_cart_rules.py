"""The cart's rules (the e-commerce blueprint's code overlay): prices come from the catalog
(the stand-in of `fixtures.py`, a real HTTP server) when an item is added, never from the body;
each customer sees only their own items; a confirmed order empties its customer's cart.

Yours: copied once by `microforge blueprint`, never overwritten by `copier update`.
"""

import datetime
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cart_service.app import create_app
from cart_service.events.envelope import EventEnvelope
from cart_service.security import issue_dev_token
from cart_service.settings import Settings

from ..support import assert_problem
from .fixtures import StandInCatalog

ITEMS = "/v1/cart-items"


@pytest.fixture
def shopper(settings: Settings) -> Iterator[TestClient]:
    """A customer's client (scope `customer` only, as the identity service issues it)."""
    token = issue_dev_token(settings, ["customer"], subject=str(uuid.uuid4()))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def test_the_unit_price_is_the_catalogs_at_add_time(
    client: TestClient, shopper: TestClient, catalog: StandInCatalog
) -> None:
    product = catalog.add("12.50")
    response = shopper.post(ITEMS, json={"product_id": product, "quantity": 2})
    assert response.status_code == 201, response.text
    item = response.json()
    assert (item["unit_price"], item["quantity"]) == ("12.50", 2)
    assert f"/v1/products/{product}" in catalog.requests
    # a later price change does not touch the item added before it
    catalog.products[product] = {"price": "20.00"}
    assert shopper.get(f"{ITEMS}/{item['id']}").json()["unit_price"] == "12.50"
    again = shopper.post(ITEMS, json={"product_id": product, "quantity": 1}).json()
    assert again["unit_price"] == "20.00"


def test_a_price_in_the_body_is_refused(shopper: TestClient, catalog: StandInCatalog) -> None:
    product = catalog.add("3.00")
    body = {"product_id": product, "quantity": 1, "unit_price": "0.01"}
    assert_problem(shopper.post(ITEMS, json=body), 422, "unit_price")
    item = shopper.post(ITEMS, json={"product_id": product, "quantity": 1}).json()
    patch = shopper.patch(f"{ITEMS}/{item['id']}", json={"unit_price": "0.01"})
    assert_problem(patch, 422, "unit_price")
    assert shopper.get(f"{ITEMS}/{item['id']}").json()["unit_price"] == "3.00"


def test_another_product_brings_its_own_price(shopper: TestClient, catalog: StandInCatalog) -> None:
    item = shopper.post(ITEMS, json={"product_id": catalog.add("1.00"), "quantity": 1}).json()
    other = catalog.add("7.25")
    response = shopper.patch(f"{ITEMS}/{item['id']}", json={"product_id": other, "quantity": 3})
    assert response.status_code == 200, response.text
    assert (response.json()["unit_price"], response.json()["quantity"]) == ("7.25", 3)


def test_unknown_or_archived_products_are_refused(
    shopper: TestClient, catalog: StandInCatalog
) -> None:
    missing = str(uuid.uuid4())
    catalog.products[missing] = None
    archived = catalog.add("5.00", status="ARCHIVED")
    for product in (missing, archived):
        response = shopper.post(ITEMS, json={"product_id": product, "quantity": 1})
        assert_problem(response, 422, "product_id")
    assert shopper.get(ITEMS).json()["items"] == []


def test_quantity_is_from_1_to_100(shopper: TestClient, catalog: StandInCatalog) -> None:
    product = catalog.add("1.00")
    for quantity in (0, 101, True, "2"):
        body = {"product_id": product, "quantity": quantity}
        assert_problem(shopper.post(ITEMS, json=body), 422, "quantity")


def test_the_catalog_away_answers_503(settings: Settings) -> None:
    away = settings.model_copy(update={"catalog_service_url": "http://127.0.0.1:9"})
    token = issue_dev_token(away, ["customer"], subject=str(uuid.uuid4()))
    with TestClient(create_app(away), headers={"Authorization": f"Bearer {token}"}) as client:
        response = client.post(ITEMS, json={"product_id": str(uuid.uuid4()), "quantity": 1})
        assert_problem(response, 503)
        assert client.get(ITEMS).json()["items"] == []


def test_customers_see_only_their_own_items(
    shopper: TestClient, settings: Settings, catalog: StandInCatalog
) -> None:
    mine = shopper.post(ITEMS, json={"product_id": catalog.add("2.00"), "quantity": 1}).json()
    token = issue_dev_token(settings, ["customer"], subject=str(uuid.uuid4()))
    with TestClient(create_app(settings), headers={"Authorization": f"Bearer {token}"}) as other:
        assert_problem(other.get(f"{ITEMS}/{mine['id']}"), 404)
        assert other.get(ITEMS).json()["items"] == []
        assert_problem(other.delete(f"{ITEMS}/{mine['id']}"), 404)
    assert shopper.get(f"{ITEMS}/{mine['id']}").status_code == 200


def order_confirmed(customer_id: str) -> EventEnvelope:
    """An order.OrderConfirm event as the order service sends it (its payload: the order)."""
    order_id = uuid.uuid4()
    now = datetime.datetime.now(datetime.UTC)
    return EventEnvelope(
        id=uuid.uuid4(),
        type="OrderConfirm",
        source="order",
        aggregate_type="Order",
        aggregate_id=order_id,
        version=2,
        occurred_at=now,
        payload={"id": str(order_id), "customer_id": customer_id, "status": "CONFIRMED"},
    )


def test_a_confirmed_order_empties_its_customers_cart_only(
    client: TestClient, shopper: TestClient, catalog: StandInCatalog
) -> None:
    for price in ("1.00", "2.00"):
        shopper.post(ITEMS, json={"product_id": catalog.add(price), "quantity": 1})
    someone_else = str(uuid.uuid4())
    body = {"product_id": catalog.add("3.00"), "quantity": 1, "customer_id": someone_else}
    assert client.post(ITEMS, json=body).status_code == 201  # admin: any customer's cart
    mine = shopper.get(ITEMS).json()["items"]
    assert len(mine) == 2
    customer = mine[0]["customer_id"]
    consumer = shopper.app.state.events.consumers["clear_cart"]  # type: ignore[attr-defined]
    event = order_confirmed(customer)
    assert shopper.portal is not None
    for _ in range(2):  # redelivered: applied once, nothing more to delete
        shopper.portal.call(consumer.deliver, event, event.model_dump(mode="json"))
    assert shopper.get(ITEMS).json()["items"] == []
    others = client.get(ITEMS, params={"customer_id": someone_else}).json()["items"]
    assert len(others) == 1
