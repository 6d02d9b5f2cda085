"""Recommendations learnt from order confirmations: pairs counted once per event (the consumer
plumbing drops a redelivered event), answered most-bought-together first, publicly."""

import uuid
from typing import Any

from fastapi.testclient import TestClient

from recommendation_service.events.envelope import EventEnvelope, make_envelope

A, B, C, D = (str(uuid.uuid4()) for _ in range(4))


def confirmation(*products: str) -> EventEnvelope:
    """An order.OrderConfirm event of an order holding `products`."""
    order_id = uuid.uuid4()
    payload = {
        "id": str(order_id),
        "version": 2,
        "status": "CONFIRMED",
        "lines": [{"product_id": p, "quantity": 1, "unit_price": "1.00"} for p in products],
    }
    envelope = make_envelope("OrderConfirm", "Order", order_id, 2, payload)
    return envelope.model_copy(update={"source": "order"})


def deliver(client: TestClient, envelope: EventEnvelope) -> str:
    app: Any = client.app
    consumer = app.state.events.consumers["learn_pairs"]
    portal: Any = client.portal
    body = envelope.model_dump(mode="json")
    result: str = portal.call(consumer.deliver, envelope, body)
    return result


def recommended(client: TestClient, product: str) -> list[tuple[str, int]]:
    response = client.get("/v1/recommendations", params={"product_id": product})
    assert response.status_code == 200, response.text
    return [(item["product_id"], item["count"]) for item in response.json()["items"]]


def test_most_bought_together_first(client: TestClient, anonymous_client: TestClient) -> None:
    for products in [(A, B, C), (A, B), (A, C, D), (A, B, D), (B, C)]:
        assert deliver(client, confirmation(*products)) == "processed"
    assert recommended(anonymous_client, A) == [(B, 3), *sorted([(C, 2), (D, 2)])]
    assert recommended(anonymous_client, B) == [(A, 3), (C, 2), (D, 1)]
    assert recommended(anonymous_client, str(uuid.uuid4())) == []


def test_a_redelivered_confirmation_counts_once(client: TestClient) -> None:
    event = confirmation(A, B)
    assert deliver(client, event) == "processed"
    assert deliver(client, event) == "duplicate"
    assert recommended(client, A) == [(B, 1)]


def test_an_order_of_one_product_or_odd_lines_teaches_nothing(client: TestClient) -> None:
    assert deliver(client, confirmation(A, A)) == "processed"
    odd = confirmation(A)
    odd.payload["lines"] = [{"sku": "x"}, "nonsense", {"product_id": "not-a-uuid"}]
    assert deliver(client, odd) == "processed"
    assert recommended(client, A) == []


def test_the_query_is_checked(client: TestClient) -> None:
    assert client.get("/v1/recommendations").status_code == 422
    assert client.get("/v1/recommendations", params={"product_id": "x"}).status_code == 422
    response = client.get("/v1/recommendations", params={"product_id": A, "limit": 0})
    assert response.status_code == 422
