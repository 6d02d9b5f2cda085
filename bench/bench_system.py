"""The e-commerce shop as a user runs it: `microforge blueprint blueprints/ecommerce` then
`microforge run`, measured from outside.

    uv run python bench/bench_system.py [--database sqlite|postgres] [--users 50] [--seconds 20]

Prints:
- the time from `microforge run` to every service ready (set-up of the nine projects' environments
  first, timed apart: the first run installs their dependencies);
- reads of a product (GET /v1/products/{id}) by `--users` concurrent clients, through the gateway
  and straight to the catalog service in the same run: req/s, p50, p99, and the gateway's cost as
  the ratio of the two;
- checkouts (cart item, then POST /v1/orders, until the order is CONFIRMED by the saga across
  inventory and payment) through the gateway and straight to the services: orders/s, p50, p99 of
  the POST and of the time to CONFIRMED.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Shop:
    """A generated shop started by `microforge run` (in its own process group)."""

    def __init__(self, root: Path, database: str) -> None:
        self.root = root
        microforge = Path(sys.executable).with_name("microforge")
        env = dict(os.environ)
        env.pop("BROKER_URL", None)
        env.update(
            RATE_LIMIT_DEFAULT="10000000/minute",  # the load comes from one address
            LOGIN_MAX_FAILURES_PER_ADDRESS="1000000",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        )
        self.log = root.parent / "run.out"
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [
                *(str(microforge), "run", str(root), "--database", database),
                *("--gateway-port", "0", "--logs", str(root.parent / "logs")),
            ],
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.state_file = root / ".microforge" / "run" / "state.json"

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.state_file.read_text(encoding="utf-8"))
        return state

    def wait_ready(self, timeout: float = 900.0) -> tuple[float, float]:
        """Seconds until the set-up ended and until every process answered /ready."""
        deadline = time.monotonic() + timeout
        setup_done: float | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"microforge run exited:\n{self.log.read_text()[-3000:]}")
            text = self.log.read_text(errors="replace")
            if setup_done is None and " is ready on " in text:
                setup_done = time.perf_counter() - self.started
            if self.state_file.is_file() and self._ready():
                return setup_done or 0.0, time.perf_counter() - self.started
            time.sleep(0.25)
        sys.exit(f"not ready within {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            urls = [p["url"] for n, p in self.state()["processes"].items() if n != "nats"]
        except (ValueError, KeyError):
            return False
        if len(urls) < 9:
            return False
        try:
            return all(httpx.get(f"{u}/ready", timeout=2).status_code == 200 for u in urls)
        except httpx.HTTPError:
            return False

    def url(self, name: str) -> str:
        url: str = self.state()["processes"][name]["url"]
        return url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


async def login(http: httpx.AsyncClient, email: str, password: str) -> str:
    response = await http.post(
        "/api/identity/v1/tokens",
        json={"grant_type": "password", "username": email, "password": password},
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def shopper(http: httpx.AsyncClient) -> str:
    email, password = f"bench-{uuid.uuid4().hex[:12]}@example.com", uuid.uuid4().hex
    body = {"email": email, "password": password, "display_name": "Bench"}
    (await http.post("/api/identity/v1/registrations", json=body)).raise_for_status()
    return await login(http, email, password)


async def product(http: httpx.AsyncClient, admin: str, stock: int) -> str:
    auth = {"Authorization": f"Bearer {admin}"}
    body = {"name": f"Bench {uuid.uuid4().hex[:8]}", "price": "9.99"}
    created = await http.post("/api/catalog/v1/products", json=body, headers=auth)
    created.raise_for_status()
    product_id: str = created.json()["id"]
    for _ in range(300):
        items = (
            await http.get("/api/inventory/v1/stock-items", params={"product_id": product_id})
        ).json()["items"]
        if items:
            patch = {"on_hand": stock}
            url = f"/api/inventory/v1/stock-items/{items[0]['id']}"
            (await http.patch(url, json=patch, headers=auth)).raise_for_status()
            return product_id
        await asyncio.sleep(0.1)
    sys.exit("the product's stock item never appeared")


async def reads(base: str, path: str, users: int, seconds: float) -> tuple[float, list[float]]:
    """Requests/s and latencies (ms) of `users` clients GETting `path` for `seconds`."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as http:
        end = time.perf_counter() + seconds

        async def user() -> None:
            while time.perf_counter() < end:
                started = time.perf_counter()
                response = await http.get(path)
                response.raise_for_status()
                latencies.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(users)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


async def checkouts(
    prefixes: dict[str, str], tokens: list[str], product_id: str
) -> tuple[float, list[float], list[float]]:
    """Every token's user checks out one item at once: orders/s, POST latencies, time to
    CONFIRMED (ms). `prefixes` maps the cart and orders APIs to their base URLs."""
    posts: list[float] = []
    settled: list[float] = []
    limits = httpx.Limits(max_connections=len(tokens))
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def one(token: str) -> None:
            auth = {"Authorization": f"Bearer {token}"}
            item = {"product_id": product_id, "quantity": 1}
            added = await http.post(f"{prefixes['cart']}/v1/cart-items", json=item, headers=auth)
            added.raise_for_status()
            started = time.perf_counter()
            keyed = auth | {"Idempotency-Key": uuid.uuid4().hex}
            body = {"card_number": "4242424242424242"}
            created = await http.post(f"{prefixes['orders']}/v1/orders", json=body, headers=keyed)
            created.raise_for_status()
            posts.append((time.perf_counter() - started) * 1000)
            order_url = f"{prefixes['orders']}/v1/orders/{created.json()['id']}"
            while True:
                status = (await http.get(order_url, headers=auth)).json()["status"]
                if status != "PENDING":
                    break
                await asyncio.sleep(0.05)
            if status != "CONFIRMED":
                sys.exit(f"an order ended {status}")
            settled.append((time.perf_counter() - started) * 1000)

        began = time.perf_counter()
        await asyncio.gather(*(one(t) for t in tokens))
        elapsed = time.perf_counter() - began
    return len(tokens) / elapsed, posts, settled


def line(label: str, rate: float, latencies: list[float], unit: str = "req/s") -> str:
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    return f"  {label:<28} {rate:8.1f} {unit}   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"


async def measure(shop: Shop, users: int, seconds: float) -> None:
    gateway = shop.url("gateway")
    secrets = json.loads((shop.root / ".microforge/run/secrets.json").read_text())
    async with httpx.AsyncClient(base_url=gateway, timeout=60) as http:
        admin = await login(http, secrets["admin_email"], secrets["admin_password"])
        product_id = await product(http, admin, stock=10 * users)
        sem = asyncio.Semaphore(4)

        async def limited() -> str:
            async with sem:
                return await shopper(http)

        tokens = await asyncio.gather(*(limited() for _ in range(2 * users)))

    print(f"\nreads of one product, {users} concurrent users, {seconds:.0f} s each:")
    rate_gw, lat_gw = await reads(gateway, f"/api/catalog/v1/products/{product_id}", users, seconds)
    rate_direct, lat_direct = await reads(
        shop.url("catalog"), f"/v1/products/{product_id}", users, seconds
    )
    print(line("through the gateway", rate_gw, lat_gw))
    print(line("straight to catalog", rate_direct, lat_direct))
    print(f"  gateway/direct throughput ratio: {rate_gw / rate_direct:.2f}")

    print(f"\ncheckouts, {users} users at once (POST /v1/orders, then the saga to CONFIRMED):")
    via = {"cart": f"{gateway}/api/cart", "orders": f"{gateway}/api/orders"}
    direct = {"cart": shop.url("cart"), "orders": shop.url("order")}
    rate_a, post_a, done_a = await checkouts(via, tokens[:users], product_id)
    rate_b, post_b, done_b = await checkouts(direct, tokens[users:], product_id)
    print(line("gateway: POST /v1/orders", rate_a, post_a, "orders/s"))
    print(line("gateway: until CONFIRMED", rate_a, done_a, "orders/s"))
    print(line("direct: POST /v1/orders", rate_b, post_b, "orders/s"))
    print(line("direct: until CONFIRMED", rate_b, done_b, "orders/s"))
    print(f"  gateway/direct checkout throughput ratio: {rate_a / rate_b:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the generated shop")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-system-"))
    root = scratch / "shop"
    microforge = Path(sys.executable).with_name("microforge")
    started = time.perf_counter()
    subprocess.run(
        [
            str(microforge),
            "blueprint",
            str(REPO / "blueprints/ecommerce"),
            "-o",
            str(root),
            "--no-lock",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    print(f"microforge blueprint blueprints/ecommerce: {time.perf_counter() - started:.1f} s")
    for attempt in ("first", "second"):
        shop = Shop(root, args.database)
        try:
            setup, ready = shop.wait_ready()
            print(
                f"microforge run ({attempt} start, {args.database}): every service ready in "
                f"{ready:.1f} s (of which project set-up and migrations {setup:.1f} s)"
            )
            if attempt == "second":
                asyncio.run(measure(shop, args.users, args.seconds))
        finally:
            shop.stop()
    if not args.keep:
        subprocess.run(["rm", "-rf", str(scratch)], check=False)
    else:
        print(f"kept: {root}")


if __name__ == "__main__":
    main()
