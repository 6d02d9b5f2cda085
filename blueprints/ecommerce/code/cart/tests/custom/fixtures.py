"""The cart's fixtures for the whole suite (the e-commerce blueprint's code overlay): the
catalog the cart reads prices from is a small real HTTP server on loopback, and `settings`
points the catalog client at it (the generated settings point it at a closed port).

The stand-in answers `GET /v1/products/{id}` with the products a test put in `products` (None:
404), and any other id with an ACTIVE product whose price derives from the id (so the generated
tests' random product ids can be added to carts).

Yours: copied once by `microforge blueprint`, never overwritten by `copier update`.
"""

import datetime
import json
import re
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cart_service.settings import Settings

PRODUCT_PATH = re.compile(r"^/v1/products/([0-9a-fA-F-]{36})$")


def default_price(product_id: uuid.UUID) -> str:
    """The price of a product no test described: from 0.01 to 100.00, fixed per id."""
    return str(Decimal(product_id.int % 10000 + 1) / 100)


class StandInCatalog:
    """The products the stand-in serves, and the requests it answered."""

    def __init__(self) -> None:
        self.url = ""
        self.products: dict[str, dict[str, Any] | None] = {}
        self.requests: list[str] = []

    def add(self, price: str, status: str = "ACTIVE") -> str:
        """A product of the catalog with this price; its id."""
        product_id = str(uuid.uuid4())
        self.products[product_id] = {"price": price, "status": status}
        return product_id

    def answer(self, path: str) -> tuple[int, dict[str, Any]]:
        self.requests.append(path)
        match = PRODUCT_PATH.match(path)
        if match is None:
            return 404, {"type": "about:blank", "title": "Not Found", "status": 404}
        product_id = uuid.UUID(match.group(1))
        described = self.products.get(str(product_id), {})
        if described is None:
            return 404, {"type": "about:blank", "title": "Not Found", "status": 404}
        now = datetime.datetime.now(datetime.UTC).isoformat()
        product = {
            "id": str(product_id),
            "name": f"Product {str(product_id)[:8]}",
            "description": None,
            "price": default_price(product_id),
            "category_id": None,
            "status": "ACTIVE",
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        return 200, {**product, **described}


@pytest.fixture(scope="session")
def catalog() -> Iterator[StandInCatalog]:
    """The stand-in catalog, served on a free loopback port for the whole run."""
    stand_in = StandInCatalog()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = stand_in.answer(self.path)
            data = json.dumps(body).encode()
            self.send_response(status)
            kind = "application/json" if status < 400 else "application/problem+json"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="catalog-stand-in", daemon=True)
    thread.start()
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(database_url: str, dev_key_file: Path, catalog: StandInCatalog) -> Settings:
    """The generated test settings, with the catalog client calling the stand-in."""
    return Settings(
        app_env="test",
        database_url=database_url,
        auth_dev_key_file=dev_key_file,
        rate_limit_default="10000/second",
        catalog_service_url=catalog.url,
    )


__all__ = ["catalog", "settings"]
