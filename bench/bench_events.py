"""Events through the transactional outbox on NATS: throughput and the cost per write.

    python bench/bench_events.py [--writes 1000] [--nats nats://127.0.0.1:4222]
                                 [--database-url URL] [--json]

What it does, in one run:
1. generates the order service (tests/specs/events_order.yaml: Order publishes OrderCreated)
   with Copier from this checkout into a temporary directory, `uv sync`s it and migrates a
   fresh SQLite database (or the PostgreSQL database of `--database-url`);
2. in one process of that project, with its events runtime started on NATS (relay woken by
   each commit) and a tap subscribed to `order.OrderCreated` through its own connection:
   - writes `--writes` orders one after another through the generated repository with events
     off (the same repository class without its `events`): the write latency baseline;
   - writes as many again with events on (each commit also writes its outbox row and wakes the
     relay), timing each write, and the moment the tap receives each event;
3. prints the per-write latency (mean, p50, p99) with events off and on, the added latency per
   write and the ratio on/off; and the events per second from the first commit to the last
   event received by the subscriber, with the commit-to-subscriber latency (p50, p99).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "tests" / "specs" / "events_order.yaml"

INNER = textwrap.dedent(
    """
    import asyncio, json, statistics, sys, time, uuid
    from pathlib import Path

    from order_service.__main__ import migrate
    from order_service.database import create_engine, create_session_factory
    from order_service.events.bus import EventBus
    from order_service.events.runtime import EventsRuntime
    from order_service.repositories.order import OrderRepository
    from order_service.settings import Settings

    writes, nats, url, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])


    class Silent(OrderRepository):
        events = {}


    def stats(values):
        ordered = sorted(values)
        return {
            "mean_ms": statistics.fmean(values) * 1000,
            "p50_ms": ordered[len(ordered) // 2] * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        }


    async def write(factory, repository, n, prefix, committed=None):
        latencies = []
        for i in range(n):
            values = {"number": f"{prefix}{i}", "product_id": uuid.uuid4(), "quantity": 1}
            async with factory() as session:
                started = time.perf_counter()
                row = await repository(session).create(values)
                done = time.perf_counter()
            latencies.append(done - started)
            if committed is not None:
                committed[str(row.id)] = done
        return latencies


    async def main():
        settings = Settings(
            app_env="test",
            database_url=url,
            broker_url=nats,
            outbox_poll_seconds=0.5,
            auth_dev_key_file=workdir / "key.pem",
        )
        engine = create_engine(url)
        factory = create_session_factory(engine)
        runtime = EventsRuntime(settings, factory)
        received = {}
        tap = EventBus(nats, "bench-probe")

        async def on_event(body):
            received[body["aggregate_id"]] = time.perf_counter()

        tap.subscribe("order.OrderCreated", "tap", on_event, durable=False)
        await tap.start()
        await runtime.start()
        await write(factory, Silent, 50, "warm-off-")
        await write(factory, OrderRepository, 50, "warm-on-")
        await asyncio.sleep(1.0)
        received.clear()
        off = await write(factory, Silent, writes, "off-")
        committed = {}
        first = time.perf_counter()
        on = await write(factory, OrderRepository, writes, "on-", committed)
        deadline = time.perf_counter() + 120
        while not set(committed) <= set(received) and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
        last = max(received[k] for k in committed if k in received)
        delivered = sum(1 for k in committed if k in received)
        e2e = [received[k] - committed[k] for k in committed if k in received]
        await runtime.stop()
        await tap.stop()
        await engine.dispose()
        print(json.dumps({
            "writes": writes,
            "database": url.split(":", 1)[0],
            "events_off": stats(off),
            "events_on": stats(on),
            "delivered": delivered,
            "events_per_second": delivered / (last - first),
            "commit_to_subscriber": stats(e2e),
        }))


    async def admin(server, statement):
        import sqlalchemy as sa

        admin_engine = create_engine(server)
        async with admin_engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(sa.text(statement))
        await admin_engine.dispose()


    server = None
    if url.startswith("postgresql"):  # a scratch database on that server, dropped at the end
        from sqlalchemy.engine import make_url

        server, name = url, f"bench_events_{uuid.uuid4().hex[:10]}"
        asyncio.run(admin(server, f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(database_url=url)
        asyncio.run(main())
    finally:
        if server is not None:
            asyncio.run(admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=1000, help="writes per phase")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server URL")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL (postgresql+asyncpg://...; a scratch database is created"
        " on it and dropped); default: a SQLite file",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    parts = urlsplit(args.nats)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 2).close()
    except OSError:
        print(f"bench_events: NATS does not answer at {args.nats}", file=sys.stderr)
        return 2
    import copier

    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        workdir = Path(tmp)
        project = workdir / "order"
        copier.run_copy(
            str(REPO),
            str(project),
            data={"spec": yaml.safe_load(SPEC.read_text()), "database": "postgres"},
            defaults=True,
            unsafe=False,
            quiet=True,
            vcs_ref="HEAD",
        )
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=env, check=True)
        (project / "bench_inner.py").write_text(INNER)
        url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
        result = subprocess.run(
            [
                "uv",
                "run",
                "--no-sync",
                "python",
                "bench_inner.py",
                str(args.writes),
                args.nats,
                url,
                str(workdir),
            ],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
            return 1
        report = json.loads(result.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    off, on, e2e = report["events_off"], report["events_on"], report["commit_to_subscriber"]
    print(f"order service, {report['writes']} writes per phase, {report['database']}, NATS")
    print(f"{'write latency':<22}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, row in (("events off", off), ("events on (outbox)", on)):
        print(f"{label:<22}{row['mean_ms']:>10.3f}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
    added = on["mean_ms"] - off["mean_ms"]
    ratio = on["mean_ms"] / off["mean_ms"]
    print(f"added per write: {added:.3f} ms (mean); ratio on/off: {ratio:.2f}")
    print(
        f"commit -> subscriber: {report['events_per_second']:.0f} events/s "
        f"({report['delivered']}/{report['writes']} delivered), "
        f"latency p50 {e2e['p50_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
