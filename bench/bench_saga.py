"""The saga machinery's cost: a three-step saga across three generated services on loopback,
against the same three calls made directly by a client, in the same run.

    uv run python bench/bench_saga.py [--trips 200] [--concurrency 16] [--database sqlite|postgres]

What it does:
1. generates booking (tests/specs/saga_trip.yaml: a Trip's `book` saga: hold a room at hotel,
   charge at bank, commit the hold), hotel and bank (tests/specs/saga_hotel.yaml,
   saga_bank.yaml) with the test's code overlays (tests/saga_code/), `uv sync`s them, migrates a
   fresh database each (SQLite files, or scratch PostgreSQL databases) and serves each with
   `python -m <pkg> serve` (1 uvicorn worker, development settings, rate limit off);
2. direct: `--trips` trips done by a client itself with `--concurrency` workers, each trip the
   three calls the saga makes (POST /v1/holds, POST /v1/charges, POST /v1/holds/{id}/commit, each
   with an Idempotency-Key, as the saga sends them): trips per second and the latency of each call;
3. saga: `--trips` trips created through booking's API by the same workers; booking's saga runner
   makes the calls; the run ends when every saga SUCCEEDED: sagas per second (first create to last
   success) and each step's call latency as the runner measured it (from the status endpoint);
4. prints both and their ratio (saga throughput / direct throughput: what durability, leases,
   the outcome commits between steps and the runner's scheduling cost).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchlib import REPO, free_port, generate, postgres_answers, scratch_postgres, stop, wait_ready

SPECS = REPO / "tests" / "specs"
CODE = REPO / "tests" / "saga_code"
SERVICES = {
    "hotel": ("saga_hotel.yaml", {"hold.py": "hooks/hold.py"}),
    "bank": ("saga_bank.yaml", {"charge.py": "hooks/charge.py"}),
    "booking": ("saga_trip.yaml", {"book.py": "sagas/book.py"}),
}
NIGHTS = 2  # 200 a charge: below bank's card limit and its slow amount


def call(method: str, url: str, token: str, body: object = None, key: str | None = None) -> Any:
    """One JSON call; the answer (exits the benchmark on an unexpected status)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers=headers,
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {url} answered {error.code}: {error.read()[:500]!r}")


class Service:
    """A generated service served on a free port."""

    def __init__(self, name: str, root: Path, database_url: str, **env: str) -> None:
        spec, overlay = SERVICES[name]
        self.project = root / name
        generate(SPECS / spec, self.project)
        for source, target in overlay.items():
            shutil.copy(CODE / name / source, self.project / "src" / f"{name}_service" / target)
        self.python = [str(self.project / ".venv" / "bin" / "python"), "-m", f"{name}_service"]
        self.env = {
            "PATH": "/usr/bin:/bin",
            "APP_ENV": "development",
            "DATABASE_URL": database_url,
            "AUTH_DEV_KEY_FILE": str(root / "dev-key.pem"),
            "RATE_LIMIT_DEFAULT": "off",
            "LOG_LEVEL": "WARNING",
            **env,
        }
        subprocess.run([*self.python, "migrate"], env=self.env, check=True, capture_output=True)
        self.token = subprocess.run(
            [*self.python, "dev-token", "--all-scopes", "--sub", str(uuid.uuid4())],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def serve(self) -> subprocess.Popen[bytes]:
        self.process = subprocess.Popen(
            [*self.python, "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready("127.0.0.1", self.port, "/ready", self.process)
        return self.process


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def direct(
    hotel: Service, bank: Service, trips: int, workers: int
) -> tuple[float, dict[str, list[float]]]:
    """The three calls made by the client itself: trips per second, latencies per call."""
    latencies: dict[str, list[float]] = {"hold_room": [], "charge": [], "commit_room": []}

    def trip(_: int) -> None:
        trip_id = str(uuid.uuid4())
        started = time.perf_counter()
        hold = call(
            "POST",
            f"{hotel.url}/v1/holds",
            hotel.token,
            {"trip_id": trip_id, "nights": NIGHTS},
            key=f"{trip_id}:hold_room:do",
        )
        latencies["hold_room"].append(time.perf_counter() - started)
        started = time.perf_counter()
        call(
            "POST",
            f"{bank.url}/v1/charges",
            bank.token,
            {"trip_id": trip_id, "amount": NIGHTS * 100},
            key=f"{trip_id}:charge:do",
        )
        latencies["charge"].append(time.perf_counter() - started)
        started = time.perf_counter()
        call(
            "POST",
            f"{hotel.url}/v1/holds/{hold['id']}/commit",
            hotel.token,
            key=f"{trip_id}:commit_room:do",
        )
        latencies["commit_room"].append(time.perf_counter() - started)

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(trip, range(trips)))
    return trips / (time.perf_counter() - started), latencies


def sagas(booking: Service, trips: int, workers: int) -> tuple[float, dict[str, list[float]]]:
    """Trips booked through booking's saga: sagas per second, each step's call latency."""

    def book(_: int) -> str:
        body = {"destination": "Lisbon", "nights": NIGHTS}
        return str(call("POST", f"{booking.url}/v1/trips", booking.token, body)["id"])

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        ids = list(pool.map(book, range(trips)))
    pending = set(ids)
    statuses: dict[str, Any] = {}
    deadline = time.monotonic() + 600
    while pending:
        if time.monotonic() > deadline:
            sys.exit(f"{len(pending)} sagas still running after 10 minutes")
        for trip_id in list(pending):
            status = call("GET", f"{booking.url}/v1/trips/{trip_id}/saga", booking.token)
            if status["status"] == "SUCCEEDED":
                statuses[trip_id] = status
                pending.discard(trip_id)
            elif status["status"] in ("FAILED", "STUCK"):
                sys.exit(f"saga of trip {trip_id} ended {status['status']}: {status['reason']}")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    latencies: dict[str, list[float]] = {}
    for status in statuses.values():
        for step in status["steps"]:
            latencies.setdefault(step["name"], []).append(float(step["do"]["seconds"]))
    return trips / elapsed, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    if args.database == "postgres" and not postgres_answers():
        sys.exit("PostgreSQL does not answer on 127.0.0.1:5432")
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-saga-") as scratch, ExitStack() as stack:
        root = Path(scratch)

        def database(name: str) -> str:
            if args.database == "sqlite":
                return f"sqlite+aiosqlite:///{root / name}.db"
            return stack.enter_context(scratch_postgres(f"bench_saga_{name}"))

        try:
            print(f"generating and serving booking, hotel and bank ({args.database}) ...")
            hotel = Service("hotel", root, database("hotel"))
            bank = Service("bank", root, database("bank"))
            processes += [hotel.serve(), bank.serve()]
            booking = Service(
                "booking",
                root,
                database("booking"),
                HOTEL_SERVICE_URL=hotel.url,
                HOTEL_SERVICE_TOKEN=hotel.token,
                BANK_SERVICE_URL=bank.url,
                BANK_SERVICE_TOKEN=bank.token,
                SAGA_POLL_SECONDS="0.2",
            )
            processes.append(booking.serve())
            direct(hotel, bank, 20, args.concurrency)  # warm-up
            direct_rate, direct_latency = direct(hotel, bank, args.trips, args.concurrency)
            saga_rate, saga_latency = sagas(booking, args.trips, args.concurrency)
        finally:
            stop(processes)
    print(f"\n{args.trips} trips, {args.concurrency} concurrent clients, {args.database}")
    print(f"{'':14}{'trips/s':>10}   step latency p50 / p99 (ms)")
    for label, rate, latency in (
        ("direct calls", direct_rate, direct_latency),
        ("saga", saga_rate, saga_latency),
    ):
        steps = "  ".join(
            f"{name} {percentile(values, 0.5):.1f}/{percentile(values, 0.99):.1f}"
            for name, values in latency.items()
        )
        print(f"{label:14}{rate:10.1f}   {steps}")
    ratio = saga_rate / direct_rate
    mean_direct = statistics.fmean(v for values in direct_latency.values() for v in values)
    print(f"\nratio saga / direct throughput: {ratio:.2f}", end="")
    print(f"  (mean direct call {mean_direct * 1000:.1f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
