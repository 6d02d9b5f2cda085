"""The inventory's rules (the e-commerce blueprint's code overlay): reservations take stock
atomically (never below zero, even under concurrent reservations), refuse with a 409 naming
the short products, give it back on release and expiry, keep it on commit; catalog's
ProductCreated gives each product its StockItem, once.

On the database of the generated tests: SQLite, or PostgreSQL with TEST_DATABASE_URL set.
Yours: copied once by `microforge blueprint`, never overwritten by `copier update`.
"""

import asyncio
import datetime
import time
import uuid
from typing import Any

import httpx
from fastapi.testclient import TestClient

from inventory_service.app import create_app
from inventory_service.custom_routes import expire_due_reservations
from inventory_service.database import Base
from inventory_service.events.envelope import EventEnvelope
from inventory_service.security import issue_dev_token
from inventory_service.settings import Settings

from ..factories import Factory
from ..support import assert_problem

RESERVATIONS = "/v1/reservations"


def stock_of(client: TestClient, product_id: str) -> int:
    response = client.get("/v1/stock-items", params={"product_id": product_id})
    assert response.status_code == 200, response.text
    [item] = response.json()["items"]
    return int(item["on_hand"])


def reserve(client: TestClient, *lines: tuple[str, int]) -> httpx.Response:
    body = {
        "order_id": str(uuid.uuid4()),
        "lines": [{"product_id": product, "quantity": quantity} for product, quantity in lines],
    }
    response: httpx.Response = client.post(RESERVATIONS, json=body)
    return response


def test_twenty_concurrent_reservations_over_five_units_take_exactly_five(
    client: TestClient, factory: Factory
) -> None:
    product = factory.create_stock_item(on_hand=5)["product_id"]
    token = client.headers["Authorization"]

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            body: dict[str, Any] = {"lines": [{"product_id": product, "quantity": 1}]}
            return list(
                await asyncio.gather(
                    *(
                        http.post(
                            RESERVATIONS,
                            json={**body, "order_id": str(uuid.uuid4())},
                            headers={"Authorization": token},
                        )
                        for _ in range(20)
                    )
                )
            )

    assert client.portal is not None
    responses = client.portal.call(burst)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 5 + [409] * 15, [r.text for r in responses]
    assert stock_of(client, product) == 0
    for response in responses:
        if response.status_code == 409:
            assert response.json()["short_products"] == [product]


def test_a_short_product_is_named_and_nothing_is_taken(
    client: TestClient, factory: Factory
) -> None:
    plenty = factory.create_stock_item(on_hand=10)["product_id"]
    few = factory.create_stock_item(on_hand=1)["product_id"]
    unknown = str(uuid.uuid4())  # no StockItem: nothing on hand
    response = reserve(client, (plenty, 3), (few, 2), (unknown, 1))
    problem = assert_problem(response, 409)
    assert sorted(problem["short_products"]) == sorted([few, unknown])
    assert problem["detail"].startswith("out of stock: ")
    assert few in problem["detail"]
    assert unknown in problem["detail"]
    assert plenty not in problem["detail"]
    assert (stock_of(client, plenty), stock_of(client, few)) == (10, 1)  # rolled back
    assert client.get(RESERVATIONS).json()["items"] == []


def test_lines_of_one_product_add_up_and_exactly_all_the_stock_may_go(
    client: TestClient, factory: Factory
) -> None:
    product = factory.create_stock_item(on_hand=5)["product_id"]
    assert_problem(reserve(client, (product, 3), (product, 3)), 409)
    created = reserve(client, (product, 2), (product, 3))
    assert created.status_code == 201, created.text
    assert created.json()["lines"] == [{"product_id": product, "quantity": 5}]
    assert stock_of(client, product) == 0


def test_release_and_expire_give_the_stock_back_and_commit_keeps_it(
    client: TestClient, factory: Factory
) -> None:
    product = factory.create_stock_item(on_hand=10)["product_id"]
    ids = []
    for quantity in (1, 2, 3):
        response = reserve(client, (product, quantity))
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    assert stock_of(client, product) == 4
    for reservation_id, move in zip(ids, ("release", "expire", "commit"), strict=True):
        response = client.post(f"{RESERVATIONS}/{reservation_id}/{move}")
        assert response.status_code == 200, response.text
    assert stock_of(client, product) == 4 + 1 + 2
    # a second release gives nothing back: the state machine refuses it
    assert_problem(client.post(f"{RESERVATIONS}/{ids[0]}/release"), 409)
    assert_problem(client.post(f"{RESERVATIONS}/{ids[2]}/release"), 409)
    assert stock_of(client, product) == 7


def test_concurrent_releases_of_one_reservation_give_back_once(
    client: TestClient, factory: Factory
) -> None:
    product = factory.create_stock_item(on_hand=4)["product_id"]
    reservation = reserve(client, (product, 4)).json()
    token = client.headers["Authorization"]

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            path = f"{RESERVATIONS}/{reservation['id']}/release"
            calls = (http.post(path, headers={"Authorization": token}) for _ in range(8))
            return [response.status_code for response in await asyncio.gather(*calls)]

    assert client.portal is not None
    statuses = sorted(client.portal.call(burst))
    assert statuses == [200] + [409] * 7, statuses
    assert stock_of(client, product) == 4


def test_bad_lines_are_refused_with_422(client: TestClient, factory: Factory) -> None:
    product = factory.create_stock_item(on_hand=5)["product_id"]
    for lines, field in [
        ([], "lines"),
        ({"product_id": product, "quantity": 1}, "lines"),
        (["x"], "lines.0"),
        ([{"product_id": "nope", "quantity": 1}], "lines.0.product_id"),
        ([{"product_id": product, "quantity": 0}], "lines.0.quantity"),
        ([{"product_id": product, "quantity": True}], "lines.0.quantity"),
        ([{"product_id": product, "quantity": 1.5}], "lines.0.quantity"),
        ([{"product_id": product, "quantity": 10**12}], "lines.0.quantity"),
    ]:
        body = {"order_id": str(uuid.uuid4()), "lines": lines}
        assert_problem(client.post(RESERVATIONS, json=body), 422, field)
    assert stock_of(client, product) == 5


def test_expires_at_is_capped_by_the_ttl_and_due_reservations_expire(
    client: TestClient, factory: Factory, settings: Settings
) -> None:
    product = factory.create_stock_item(on_hand=3)["product_id"]
    now = datetime.datetime.now(datetime.UTC)
    late = (now + datetime.timedelta(days=30)).isoformat()
    body = {"order_id": str(uuid.uuid4()), "lines": [{"product_id": product, "quantity": 1}]}
    kept = client.post(RESERVATIONS, json={**body, "expires_at": late}).json()
    expires_at = datetime.datetime.fromisoformat(kept["expires_at"])
    ttl = datetime.timedelta(seconds=settings.reservation_ttl_seconds)
    assert now + ttl - datetime.timedelta(seconds=5) < expires_at <= now + ttl + ttl
    past = (now - datetime.timedelta(seconds=1)).isoformat()
    due = client.post(RESERVATIONS, json={**body, "expires_at": past}).json()
    assert stock_of(client, product) == 1
    assert client.portal is not None
    app: Any = client.app
    expired = client.portal.call(expire_due_reservations, app.state.session_factory, settings)
    assert [str(reservation_id) for reservation_id in expired] == [due["id"]]
    assert client.get(f"{RESERVATIONS}/{due['id']}").json()["status"] == "EXPIRED"
    assert client.get(f"{RESERVATIONS}/{kept['id']}").json()["status"] == "HELD"
    assert stock_of(client, product) == 2


def test_the_app_expires_held_reservations_after_the_ttl(settings: Settings) -> None:
    quick = settings.model_copy(
        update={"reservation_ttl_seconds": 0.5, "reservation_sweep_seconds": 0.2}
    )
    token = issue_dev_token(quick, ["admin", "inventory:reserve"], subject="test-expiry")
    app = create_app(quick)
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        try:
            stock = client.post("/v1/stock-items", json={"product_id": str(uuid.uuid4())})
            product = stock.json()["product_id"]
            client.patch(f"/v1/stock-items/{stock.json()['id']}", json={"on_hand": 2})
            reservation = reserve(client, (product, 2)).json()
            assert stock_of(client, product) == 0
            deadline = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=10)
            status = "HELD"
            while status == "HELD" and datetime.datetime.now(datetime.UTC) < deadline:
                time.sleep(0.1)
                status = client.get(f"{RESERVATIONS}/{reservation['id']}").json()["status"]
            assert status == "EXPIRED"
            assert stock_of(client, product) == 2
        finally:
            assert client.portal is not None
            client.portal.call(_delete_rows, app)


async def _delete_rows(app: Any) -> None:
    async with app.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


def product_created(product_id: uuid.UUID) -> EventEnvelope:
    """A catalog.ProductCreated event as the catalog sends it."""
    return EventEnvelope(
        id=uuid.uuid4(),
        type="ProductCreated",
        source="catalog",
        aggregate_type="Product",
        aggregate_id=product_id,
        version=1,
        occurred_at=datetime.datetime.now(datetime.UTC),
        payload={"id": str(product_id), "name": "Teapot", "price": "12.50", "status": "ACTIVE"},
    )


def test_product_created_gives_the_product_a_stock_item_once(client: TestClient) -> None:
    consumer = client.app.state.events.consumers["track_product"]  # type: ignore[attr-defined]
    product_id = uuid.uuid4()
    first, again = product_created(product_id), product_created(product_id)
    assert client.portal is not None
    for event in (first, first, again):  # redelivered, then another event of the product
        client.portal.call(consumer.deliver, event, event.model_dump(mode="json"))
    items = client.get("/v1/stock-items", params={"product_id": str(product_id)}).json()["items"]
    assert [(item["product_id"], item["on_hand"]) for item in items] == [(str(product_id), 0)]
    # a product an admin stocked first keeps its stock
    stocked = client.get(f"/v1/stock-items/{items[0]['id']}").json()
    response = client.patch(f"/v1/stock-items/{stocked['id']}", json={"on_hand": 7})
    assert response.status_code == 200, response.text
    later = product_created(product_id)
    client.portal.call(consumer.deliver, later, later.model_dump(mode="json"))
    assert stock_of(client, str(product_id)) == 7


def test_reservations_need_the_reserve_scope_and_stock_reads_are_public(
    anonymous_client: TestClient, factory: Factory, settings: Settings
) -> None:
    stock = factory.create_stock_item(on_hand=1)
    assert anonymous_client.get(f"/v1/stock-items/{stock['id']}").status_code == 200
    customer = issue_dev_token(settings, ["customer"], subject="a-customer")
    headers = {"Authorization": f"Bearer {customer}"}
    body = {"order_id": str(uuid.uuid4()), "lines": [{"product_id": stock["product_id"]}]}
    assert_problem(anonymous_client.post(RESERVATIONS, json=body, headers=headers), 403)
    patch = {"on_hand": 100}
    path = f"/v1/stock-items/{stock['id']}"
    assert_problem(anonymous_client.patch(path, json=patch, headers=headers), 403)
    assert_problem(anonymous_client.post(RESERVATIONS, json=body), 401)
