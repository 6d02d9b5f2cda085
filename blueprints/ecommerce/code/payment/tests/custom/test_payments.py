"""The payment domain: charges through the test provider, declines, masking, refunds, replays."""

import uuid
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from payment_service.hooks.providers import DECLINED_CARD, TestProvider, provider_for

GOOD_CARD = "4242424242424242"


def provider(client: TestClient) -> TestProvider:
    settings: Any = client.app.state.settings  # type: ignore[attr-defined]
    found = provider_for(settings.payment_provider, Decimal(settings.payment_limit))
    assert isinstance(found, TestProvider)
    return found


def pay(client: TestClient, card: str = GOOD_CARD, amount: str = "42.50", **headers: str) -> Any:
    body = {"order_id": str(uuid.uuid4()), "amount": amount, "card_number": card}
    return client.post("/v1/payments", json=body, headers=headers)


def test_a_charge_is_captured_and_only_the_last_four_digits_are_kept(client: TestClient) -> None:
    response = pay(client)
    assert response.status_code == 201, response.text
    payment = response.json()
    assert payment["status"] == "CAPTURED"
    assert payment["card_last4"] == "4242"
    assert payment["card_number"] == "0" * 12 + "4242"
    assert payment["provider_ref"] in provider(client).captures
    stored = client.get(f"/v1/payments/{payment['id']}").json()
    assert GOOD_CARD not in str(stored)


def test_the_test_card_is_declined_with_a_422_and_nothing_is_written(client: TestClient) -> None:
    before = len(provider(client).captures)
    response = pay(client, card=DECLINED_CARD)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "declined" in response.text
    assert client.get("/v1/payments").json()["items"] == []
    assert len(provider(client).captures) == before


def test_an_amount_over_the_limit_is_declined(client: TestClient) -> None:
    response = pay(client, amount="10000.01")
    assert response.status_code == 422, response.text
    assert "over the limit" in response.text
    assert pay(client, amount="10000.00").status_code == 201


def test_a_repeated_key_charges_once(client: TestClient) -> None:
    body = {"order_id": str(uuid.uuid4()), "amount": "10.00", "card_number": GOOD_CARD}
    key = {"Idempotency-Key": f"saga-{uuid.uuid4()}:charge:do"}
    first = client.post("/v1/payments", json=body, headers=key)
    second = client.post("/v1/payments", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert len(client.get("/v1/payments").json()["items"]) == 1


def test_a_repeated_declined_key_is_declined_again(client: TestClient) -> None:
    body = {"order_id": str(uuid.uuid4()), "amount": "10.00", "card_number": DECLINED_CARD}
    key = {"Idempotency-Key": f"saga-{uuid.uuid4()}:charge:do"}
    assert client.post("/v1/payments", json=body, headers=key).status_code == 422
    assert client.post("/v1/payments", json=body, headers=key).status_code == 422


def test_a_refund_gives_the_capture_back_through_the_provider(client: TestClient) -> None:
    payment = pay(client).json()
    response = client.post(f"/v1/payments/{payment['id']}/refund")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "REFUNDED"
    assert payment["provider_ref"] in provider(client).refunds
    assert client.post(f"/v1/payments/{payment['id']}/refund").status_code == 409
