"""Events between two generated services: order publishes OrderCreated, inventory (the example
spec) consumes it. Each project passes its linters and its event, service and migration tests
(SQLite, and the NATS, RabbitMQ and Redis legs of its broker tests); then both are served
against the real NATS and RabbitMQ servers and an order placed on one reaches the other.

The generated projects' full suites run in test_template.py; this module runs only the parts
that concern events, to keep CI time down.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from generation import EXAMPLE_SPEC, SPECS, Served, copier_copy, load_yaml, run

from microforge.run import http_get


def post_json(url: str, body: object, token: str) -> tuple[int, dict[str, object]]:
    """POST `body` as JSON with a bearer token: the status and the JSON answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


BROKERS = {
    "nats": ("nats://127.0.0.1:4222", 4222),
    "rabbit": ("amqp://guest:guest@127.0.0.1:5672/", 5672),
    "redis": ("redis://127.0.0.1:6379/0", 6379),
}


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def require(kind: str) -> str:
    """The broker's URL; skip (fail on CI) when it does not answer."""
    url, port = BROKERS[kind]
    if not answers(port):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the {kind} leg, but 127.0.0.1:{port} does not answer")
        pytest.skip(f"{kind} does not answer on 127.0.0.1:{port}")
    return url


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two services, generated and synced once for the module."""
    root = tmp_path_factory.mktemp("events")
    projects = {
        "order": copier_copy(
            load_yaml(SPECS / "events_order.yaml"), root / "order", database="sqlite"
        ),
        "inventory": copier_copy(load_yaml(EXAMPLE_SPEC), root / "inventory", database="sqlite"),
    }
    for project in projects.values():
        run(project, "uv", "sync", "--quiet")
    return projects


def test_the_pair_has_its_event_modules(pair: dict[str, Path]) -> None:
    order = pair["order"] / "src" / "order_service"
    inventory = pair["inventory"] / "src" / "inventory_service"
    assert (order / "events" / "relay.py").is_file()
    assert not (order / "events" / "consumers.py").exists()  # order consumes nothing
    assert not (order / "handlers").exists()
    assert (inventory / "handlers" / "reserve_stock.py").is_file()
    document = json.loads((order / "events" / "asyncapi.json").read_text())
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {"order.OrderCreated", "order.OrderPay", "order.OrderDeleted"} <= addresses
    consumer = json.loads((inventory / "events" / "asyncapi.json").read_text())
    actions = {op["action"] for op in consumer["operations"].values()}
    assert actions == {"send", "receive"}


@pytest.mark.generated
@pytest.mark.parametrize("name", ["order", "inventory"])
def test_each_service_passes_its_event_checks(pair: dict[str, Path], name: str) -> None:
    project = pair[name]
    run(project, "uv", "run", "ruff", "check", ".")
    run(project, "uv", "run", "ruff", "format", "--check", ".")
    run(project, "uv", "run", "mypy")
    suite = ["tests/test_events.py", "tests/test_service.py", "tests/test_migrations.py"]
    result = run(project, "uv", "run", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *suite)
    assert " passed" in result.stdout
    for kind in ("nats", "rabbit"):
        if answers(BROKERS[kind][1]):
            assert f"{kind} does not answer" not in result.stdout, result.stdout


@pytest.fixture
def served(pair: dict[str, Path], tmp_path: Path) -> Iterator[list[Served]]:
    services: list[Served] = []
    yield services
    for service in services:
        service.stop()


def inbox_aggregates(database: Path) -> list[str]:
    """The aggregate ids of the events inventory's reserve_stock processed."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT envelope FROM event_inbox WHERE handler = 'reserve_stock'"
            " AND status = 'processed'"
        ).fetchall()
    return [json.loads(envelope)["aggregate_id"] for (envelope,) in rows]


@pytest.mark.generated
@pytest.mark.parametrize("kind", ["nats", "rabbit"])
def test_an_order_placed_reaches_inventory_once(
    pair: dict[str, Path], served: list[Served], tmp_path: Path, kind: str
) -> None:
    broker = require(kind)
    settings = {"BROKER_URL": broker, "OUTBOX_POLL_SECONDS": "0.2"}
    inventory = Served(
        pair["inventory"],
        "inventory_service",
        tmp_path,
        EVENT_GROUP_PREFIX=f"inventory-e2e-{uuid.uuid4().hex[:12]}",
        **settings,
    )
    served.append(inventory.start())
    order = Served(pair["order"], "order_service", tmp_path, **settings)
    served.append(order.start())
    status, created = post_json(
        f"{order.url}/v1/orders",
        {"number": f"A-{uuid.uuid4().hex[:8]}", "product_id": str(uuid.uuid4())},
        order.token(),
    )
    assert status == 201, created
    order_id = created["id"]
    deadline = time.monotonic() + 30
    database = tmp_path / "inventory_service.db"
    while order_id not in inbox_aggregates(database):
        assert time.monotonic() < deadline, "inventory did not process the OrderCreated event"
        time.sleep(0.2)
    time.sleep(1.0)  # a duplicate would be processed by now
    assert inbox_aggregates(database).count(order_id) == 1
    asyncapi = json.loads(http_get(f"{inventory.url}/asyncapi.json")[1])
    assert "order.OrderCreated" in {c["address"] for c in asyncapi["channels"].values()}
