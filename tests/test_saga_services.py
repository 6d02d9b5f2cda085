"""A saga across three real generated services on loopback: booking (tests/specs/saga_trip.yaml,
the subject: a Trip's `book` saga) holds a room at hotel, charges the card at bank, then commits
the hold. The providers' own hooks refuse on a rule (tests/saga_code/): hotel no stay over 30
nights, bank no charge over its card limit; bank is slow for one amount, so that the test can
kill booking (SIGKILL) while a charge is being made and restart it. On SQLite, and on PostgreSQL
when it answers (each service its own scratch database)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from generation import POSTGRES_URL, SPECS, Served, copier_copy, load_yaml, postgres_answers, run

CODE = Path(__file__).parent / "saga_code"
OVERLAYS = {
    "booking": {"book.py": "sagas/book.py"},
    "hotel": {"hold.py": "hooks/hold.py"},
    "bank": {"charge.py": "hooks/charge.py"},
}
SPEC_FILES = {"booking": "saga_trip.yaml", "hotel": "saga_hotel.yaml", "bank": "saga_bank.yaml"}


def call(method: str, url: str, token: str, body: object = None) -> tuple[int, Any]:
    """An HTTP call with a bearer token: the status and the JSON answer."""
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The three services, generated and synced once, each with its code overlay."""
    root = tmp_path_factory.mktemp("saga-services")
    projects: dict[str, Path] = {}
    for name, spec in SPEC_FILES.items():
        project = copier_copy(load_yaml(SPECS / spec), root / name, database="postgres")
        package = project / "src" / f"{name}_service"
        for source, target in OVERLAYS[name].items():
            shutil.copy(CODE / name / source, package / target)
        run(project, "uv", "sync", "--quiet")
        projects[name] = project
    return projects


def database_urls(kind: str, projects: dict[str, Path], workdir: Path) -> dict[str, str]:
    """Per service: a fresh SQLite file, or a scratch PostgreSQL database."""
    if kind == "sqlite":
        return {name: f"sqlite+aiosqlite:///{workdir / name}.db" for name in projects}
    if not postgres_answers():
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL leg, but 127.0.0.1:5432 does not answer")
        pytest.skip("PostgreSQL does not answer on 127.0.0.1:5432")
    urls = {}
    for name, project in projects.items():
        database = f"saga_{name}_{uuid.uuid4().hex[:10]}"
        script = (
            "import asyncio, asyncpg\n"
            "async def main():\n"
            "    c = await asyncpg.connect('postgresql://postgres@127.0.0.1:5432/postgres')\n"
            f"    await c.execute('CREATE DATABASE \"{database}\"')\n"
            "    await c.close()\n"
            "asyncio.run(main())\n"
        )
        run(project, "uv", "run", "--no-sync", "python", "-c", script)
        urls[name] = POSTGRES_URL.rsplit("/", 1)[0] + f"/{database}"
    return urls


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def system(
    request: pytest.FixtureRequest,
    projects: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Served]]:
    """hotel and bank served, then booking calling them with their service tokens (one system
    per database kind, shared by the tests: each books its own trips)."""
    tmp_path = tmp_path_factory.mktemp(f"system-{request.param}")
    urls = database_urls(request.param, projects, tmp_path)
    served: dict[str, Served] = {}
    try:
        for name in ("hotel", "bank"):
            provider = Served(projects[name], f"{name}_service", tmp_path, DATABASE_URL=urls[name])
            served[name] = provider.start()
        served["booking"] = Served(
            projects["booking"],
            "booking_service",
            tmp_path,
            DATABASE_URL=urls["booking"],
            HOTEL_SERVICE_URL=served["hotel"].url,
            HOTEL_SERVICE_TOKEN=served["hotel"].token(),
            BANK_SERVICE_URL=served["bank"].url,
            BANK_SERVICE_TOKEN=served["bank"].token(),
            SAGA_POLL_SECONDS="0.2",
        ).start()
        yield served
    finally:
        for service in served.values():
            service.stop()


def book(system: dict[str, Served], nights: int) -> tuple[str, str]:
    """A trip booked by a traveller; its id and the traveller's token."""
    booking = system["booking"]
    token = booking.token("trip:write", "trip:read", subject=str(uuid.uuid4()))
    status, trip = call(
        "POST", f"{booking.url}/v1/trips", token, {"destination": "Lisbon", "nights": nights}
    )
    assert status == 201, trip
    return str(trip["id"]), token


def saga_end(system: dict[str, Served], trip_id: str, token: str, seconds: float = 60) -> Any:
    """The saga's status once it ended."""
    booking = system["booking"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, saga = call("GET", f"{booking.url}/v1/trips/{trip_id}/saga", token)
        if status == 200 and saga["status"] in ("SUCCEEDED", "FAILED", "STUCK"):
            return saga
        time.sleep(0.2)
    raise AssertionError(f"the saga of trip {trip_id} did not end within {seconds} s")


def rows(service: Served, path: str, trip_id: str) -> list[dict[str, Any]]:
    """The provider's rows of one trip."""
    status, page = call("GET", f"{service.url}{path}?trip_id={trip_id}", service.token())
    assert status == 200, page
    return list(page["items"])


@pytest.mark.generated
def test_a_trip_is_booked_across_three_services(system: dict[str, Served]) -> None:
    trip_id, token = book(system, nights=3)
    saga = saga_end(system, trip_id, token)
    assert saga["status"] == "SUCCEEDED", saga
    assert call("GET", f"{system['booking'].url}/v1/trips/{trip_id}", token)[1]["status"] == (
        "CONFIRMED"
    )
    [hold] = rows(system["hotel"], "/v1/holds", trip_id)
    assert hold["status"] == "COMMITTED"
    [charge] = rows(system["bank"], "/v1/charges", trip_id)
    assert charge["amount"] == 300


@pytest.mark.generated
def test_a_declined_charge_releases_the_room(system: dict[str, Served]) -> None:
    trip_id, token = book(system, nights=25)
    saga = saga_end(system, trip_id, token)
    assert saga["status"] == "FAILED", saga
    assert saga["reason"].startswith("charge: bank answered 422")
    assert "card limit" in saga["reason"]
    trip = call("GET", f"{system['booking'].url}/v1/trips/{trip_id}", token)[1]
    assert trip["status"] == "CANCELLED"
    [hold] = rows(system["hotel"], "/v1/holds", trip_id)
    assert hold["status"] == "RELEASED"
    assert rows(system["bank"], "/v1/charges", trip_id) == []


@pytest.mark.generated
def test_a_killed_subject_service_finishes_its_saga_without_doubling(
    system: dict[str, Served],
) -> None:
    trip_id, token = book(system, nights=13)  # 1300: bank takes 3 s to charge it
    deadline = time.monotonic() + 30
    while not rows(system["hotel"], "/v1/holds", trip_id):
        assert time.monotonic() < deadline, "the room was never held"
        time.sleep(0.1)
    time.sleep(1.0)  # the charge is in flight now
    system["booking"].kill()
    time.sleep(3.0)  # bank finishes the charge nobody waits for any more
    system["booking"].start()
    saga = saga_end(system, trip_id, token)
    assert saga["status"] == "SUCCEEDED", saga
    [charge] = rows(system["bank"], "/v1/charges", trip_id)
    assert charge["status"] == "CAPTURED"
    [hold] = rows(system["hotel"], "/v1/holds", trip_id)
    assert hold["status"] == "COMMITTED"
