"""Contract tests between two generated services: `cart` calls `catalog`'s API (`depends_on`).

The pair is generated once, for one test (xdist would give each test its own generation). The
consumer's suite (`tests/contract`) writes its pact file (HTTP interactions and the message pact
of the event it consumes) into its `pacts/`; the file goes to the provider through `PACT_DIR`,
whose verification replays it against the real app and the real event builder. A pact the
provider breaks (a field it does not return, a status it does not answer, an event field it
does not write) must fail that verification; with no pact it is skipped, saying why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from generation import SPECS, clean_env, copier_copy, load_yaml, run

pytestmark = pytest.mark.generated

PYTEST = ("uv", "run", "pytest", "-p", "no:cacheprovider", "-q", "-rs")


def _interaction(pact: dict[str, Any], description: str) -> dict[str, Any]:
    found: dict[str, Any] = next(i for i in pact["interactions"] if i["description"] == description)
    return found


def _check_pact(pact: dict[str, Any]) -> None:
    """The consumer's pact holds each operation it uses, with the provider states it needs."""
    assert pact["consumer"]["name"] == "cart"
    assert pact["provider"]["name"] == "catalog"
    http = [i for i in pact["interactions"] if i["type"] == "Synchronous/HTTP"]
    calls = {
        (i["request"]["method"], re.sub("[0-9a-f-]{36}", "{id}", i["request"]["path"]))
        for i in http
    }
    assert calls == {
        ("GET", "/v1/products/{id}"),  # read, and read of a missing one
        ("GET", "/v1/products"),
        ("POST", "/v1/products/{id}/discontinue"),  # a transition, and one of a missing row
        ("POST", "/v1/product-categories"),
        ("PATCH", "/v1/product-categories/{id}"),  # at its version, and at a stale one
        ("DELETE", "/v1/product-categories/{id}"),
    }
    assert len(http) == 9
    message = _interaction(pact, "event catalog.ProductCreated")
    assert message["type"] == "Asynchronous/Messages"
    assert message["metadata"]["subject"] == "catalog.ProductCreated"
    assert message["contents"]["content"]["type"] == "ProductCreated"
    assert len(pact["interactions"]) == 10
    states = {s["name"] for i in pact["interactions"] for s in i.get("providerStates", [])}
    assert states == {
        "Product exists",
        "Product does not exist",
        "Product allows discontinue",
        "Category exists",
        "Category can be created",
    }
    read = _interaction(pact, "a request to read a Product")
    assert read["response"]["status"] == 200
    assert set(read["response"]["body"]["content"]) == {"id", "version", "created_at", "updated_at"}
    create = _interaction(pact, "a request to create a Category")
    assert create["request"]["generators"]["body"]["$"]["type"] == "ProviderState"
    assert "Idempotency-Key" in create["request"]["headers"]
    discontinue = _interaction(pact, "a request to discontinue a Product")
    assert discontinue["response"]["status"] == 200
    assert "Idempotency-Key" in discontinue["request"]["headers"]


def _broken(pact: dict[str, Any]) -> dict[str, Any]:
    """The pact with a field catalog never returns, a status it never answers and an event
    payload field its builder never writes."""
    broken: dict[str, Any] = json.loads(json.dumps(pact))
    read = _interaction(broken, "a request to read a Product")
    read["response"]["body"]["content"]["colour"] = "red"
    missing = _interaction(broken, "a request to read a Product that does not exist")
    missing["response"]["status"] = 410
    event = _interaction(broken, "event catalog.ProductCreated")
    event["contents"]["content"]["payload"]["warehouse"] = "north"
    return broken


def test_consumer_pact_verified_by_the_provider(tmp_path: Path) -> None:
    """One generation of the pair for every step (the steps share it; xdist would split tests)."""
    consumer = copier_copy(load_yaml(SPECS / "cart.yaml"), tmp_path / "cart", database="sqlite")
    provider = copier_copy(
        load_yaml(SPECS / "catalog.yaml"), tmp_path / "catalog", database="sqlite"
    )
    for project in (consumer, provider):
        run(project, "uv", "sync", "--quiet")
    mine = ("src/cart_service/clients", "tests/contract")  # the whole project: test_template
    run(consumer, "uv", "run", "ruff", "check", *mine)
    run(consumer, "uv", "run", "ruff", "format", "--check", *mine)
    run(consumer, "uv", "run", "mypy", *mine)

    # The consumer's contract tests write its pact.
    result = run(consumer, *PYTEST, "tests/contract")
    assert " passed" in result.stdout
    pact_file = consumer / "pacts" / "cart-catalog.json"
    assert pact_file.is_file(), sorted((consumer / "pacts").glob("*"))
    pact = json.loads(pact_file.read_text())
    _check_pact(pact)

    # With no pact naming it, the provider's verification is skipped, saying why.
    skipped = run(provider, *PYTEST, "tests/contract")
    assert "1 skipped" in skipped.stdout
    assert "no pact names 'catalog' as its provider" in skipped.stdout

    # Given the pact through PACT_DIR, the provider honours it.
    good = tmp_path / "pacts-good"
    good.mkdir()
    shutil.copy(pact_file, good / pact_file.name)
    verified = run(provider, *PYTEST, "tests/contract", PACT_DIR=str(good))
    assert "1 passed" in verified.stdout, verified.stdout
    assert "skipped" not in verified.stdout

    # A pact the provider breaks fails the verification, naming the mismatches.
    bad = tmp_path / "pacts-bad"
    bad.mkdir()
    (bad / pact_file.name).write_text(json.dumps(_broken(pact)))
    failed = subprocess.run(
        [*PYTEST, "tests/contract"],
        cwd=provider,
        env=clean_env(PACT_DIR=str(bad)),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output[-4000:]
    assert "pact verification failed" in output
    assert "colour" in output
    assert "410" in output
    assert "warehouse" in output
