"""Events through the transactional outbox on NATS: throughput and the cost per write.

    python bench/bench_events.py [--writes 1000] [--writers 1] [--backlog 2000]
                                 [--rounds 3] [--nats nats://127.0.0.1:4222] [--database-url URL]
                                 [--vcs-ref HEAD] [--json]

What it does, in one run:
1. generates the order service (tests/specs/events_order.yaml: Order publishes OrderCreated;
   renamed bench-order, so that its events go to a NATS stream of their own, deleted at the
   end) with Copier from this checkout (at `--vcs-ref`, HEAD with uncommitted changes by
   default) into a temporary directory, `uv sync`s it and migrates a fresh SQLite database (or
   a scratch database on the PostgreSQL server of `--database-url`, dropped at the end);
2. in one process of that project, with a tap subscribed to `bench-order.OrderCreated` in a
   process of its own (its work is not counted as the relay's):
   - relay capacity: writes `--backlog` orders with events on while the relay is not running,
     then starts the events runtime (NATS) and times the relay draining that backlog to the
     subscriber (events/s, first to last received, from the start of the relay);
   - writes `--writes` orders with events off (the same repository class without its
     `events`) from `--writers` concurrent writers (each on its own session): the write
     latency baseline; as many again with events on (each commit also writes its outbox
     row and wakes the relay, which publishes off the writers' path), timing each write and the
     moment the tap receives each event; and as many with events on but the relay held (what
     the write itself costs: the outbox row, the envelope); in `--rounds` phases of each,
     interleaved, the order rotating, so that the machine's other work weighs on all alike;
3. prints the per-write latency (mean, p50, p99) with events off and on, the added latency per
   write and the ratio on/off (target at 32 writers on PostgreSQL: <= 1.3), split into the
   write's own part (held/off) and the relay's (on/held); the CPU time of the service's process
   per write in each phase (the relay's included in `on`: the ratio that holds on a CPU-bound
   service, and the one the machine's other load disturbs least); the events per
   second while writing (from each on-phase's first commit to its last event received), with the
   commit-to-subscriber latency (p50, p99); and the relay's drain rate (target >= 1,000/s).
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

    from bench_order_service.__main__ import migrate
    from bench_order_service.database import create_engine, create_session_factory
    from bench_order_service.events.bus import EventBus, stream_name
    from bench_order_service.events.runtime import EventsRuntime
    from bench_order_service.repositories.order import OrderRepository
    from bench_order_service.settings import Settings

    writes, nats, url, workdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
    writers, backlog, rounds = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])


    class Silent(OrderRepository):
        events = {}


    def stats(values):
        ordered = sorted(values)
        return {
            "mean_ms": statistics.fmean(values) * 1000,
            "p50_ms": ordered[len(ordered) // 2] * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        }


    async def write_one(factory, repository, n, prefix, latencies, committed):
        for i in range(n):
            values = {"number": f"{prefix}{i}", "product_id": uuid.uuid4(), "quantity": 1}
            async with factory() as session:
                started = time.perf_counter()
                row = await repository(session).create(values)
                done = time.perf_counter()
            latencies.append(done - started)
            if committed is not None:
                committed[str(row.id)] = done


    async def write(factory, repository, n, prefix, committed=None):
        # n writes shared by the concurrent writers; each write's latency
        latencies = []
        share = [n // writers + (1 if w < n % writers else 0) for w in range(writers)]
        tasks = [
            write_one(factory, repository, k, f"{prefix}{w}-", latencies, committed)
            for w, k in enumerate(share)
        ]
        await asyncio.gather(*tasks)
        return latencies


    async def main():
        settings = Settings(
            app_env="test",
            database_url=url,
            broker_url=nats,
            outbox_poll_seconds=0.5,
            auth_dev_key_file=workdir / "key.pem",
        )
        engine = create_engine(url, pool_size=writers + 2)
        factory = create_session_factory(engine)
        runtime = EventsRuntime(settings, factory)
        # The subscriber runs in a process of its own (its work is not the relay's); it prints
        # each event's aggregate id and arrival time (perf_counter: the same clock here).
        received = {}
        tap = await asyncio.create_subprocess_exec(
            sys.executable, "bench_tap.py", nats, stdout=asyncio.subprocess.PIPE
        )
        assert (await tap.stdout.readline()).strip() == b"ready"

        async def listen():
            async for line in tap.stdout:
                aggregate, _, moment = line.decode().partition(" ")
                received.setdefault(aggregate, float(moment))

        listener = asyncio.create_task(listen())
        drain = None
        if backlog:  # the relay's capacity: a backlog written while it was not running
            pending = {}
            await write(factory, OrderRepository, backlog, "backlog-", pending)
            await runtime.start()
            started = time.perf_counter()
            deadline = started + 120
            while not set(pending) <= set(received) and time.perf_counter() < deadline:
                await asyncio.sleep(0.005)
            got = [received[k] for k in pending if k in received]
            drain = {
                "events": backlog,
                "delivered": len(got),
                "events_per_second": len(got) / (max(got) - started) if got else 0.0,
            }
        else:
            await runtime.start()
        await write(factory, Silent, 50, "warm-off-")
        await write(factory, OrderRepository, 50, "warm-on-")
        await asyncio.sleep(1.0)
        received.clear()
        # Phases of events off, on, and on with the relay held (what the write itself costs),
        # interleaved (the order rotates) so that the machine's other work weighs on all alike;
        # each phase with events waits for them to arrive before the next one.
        async def held_relay():
            return 0

        latencies, committed, spans = {"off": [], "on": [], "held": []}, {}, []
        cpu_time = {"off": 0.0, "on": 0.0, "held": 0.0}  # this process's CPU seconds
        for number in range(rounds):
            share = writes // rounds + (1 if number < writes % rounds else 0)
            phases = ["off", "on", "held"][number % 3 :] + ["off", "on", "held"][: number % 3]
            for phase in phases:
                if phase == "off":
                    cpu = time.process_time()
                    latencies["off"] += await write(factory, Silent, share, f"off-{number}-")
                    cpu_time["off"] += time.process_time() - cpu
                    continue
                these = {}
                if phase == "held":
                    runtime.relay.relay_once = held_relay
                first, cpu = time.perf_counter(), time.process_time()
                latencies[phase] += await write(
                    factory, OrderRepository, share, f"{phase}-{number}-", these
                )
                if phase == "held":
                    cpu_time["held"] += time.process_time() - cpu
                    del runtime.relay.relay_once
                    runtime.relay.wake()
                deadline = time.perf_counter() + 120
                while not set(these) <= set(received) and time.perf_counter() < deadline:
                    await asyncio.sleep(0.005)
                if phase == "on":  # the writes and the relay's work on their events
                    cpu_time["on"] += time.process_time() - cpu
                if phase == "on":
                    arrived = [received[k] for k in these if k in received]
                    spans.append((len(arrived), max(arrived) - first if arrived else 0.0))
                    committed.update(these)
        off, on = latencies["off"], latencies["on"]
        delivered = sum(1 for k in committed if k in received)
        e2e = [received[k] - committed[k] for k in committed if k in received]
        await runtime.stop()
        tap.terminate()
        await tap.wait()
        listener.cancel()
        cleaner = EventBus(nats, "bench-probe")  # leave no streams behind on the server
        await cleaner.start()
        js = cleaner.broker.config.connection_state.stream
        for stream in ("bench-order", "bench-probe"):
            await js.delete_stream(stream_name(stream))
        await cleaner.stop()
        await engine.dispose()
        print(json.dumps({
            "writes": writes,
            "writers": writers,
            "drain": drain,
            "database": url.split(":", 1)[0],
            "events_off": stats(off),
            "events_on": stats(on),
            "events_on_relay_held": stats(latencies["held"]),
            "cpu_us_per_write": {k: v / writes * 1e6 for k, v in cpu_time.items()},
            "delivered": delivered,
            "events_per_second": sum(n for n, _ in spans) / sum(t for _, t in spans),
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


TAP = textwrap.dedent(
    """
    import asyncio, signal, sys, time

    from bench_order_service.events.bus import EventBus


    async def main():
        tap = EventBus(sys.argv[1], "bench-probe")

        async def on_event(body):
            print(body["aggregate_id"], time.perf_counter(), flush=True)

        tap.subscribe("bench-order.OrderCreated", "tap", on_event, durable=False)
        await tap.start()
        print("ready", flush=True)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await tap.stop()


    asyncio.run(main())
    """
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=1000, help="writes per phase")
    parser.add_argument(
        "--writers", type=int, default=1, help="concurrent writers (each its own session)"
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=2000,
        help="events written before the relay starts, to time its drain (0: skip)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="phases of each kind, interleaved, sharing --writes"
    )
    parser.add_argument(
        "--vcs-ref", default="HEAD", help="the template's git ref (e.g. a commit, for a before)"
    )
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

    spec = yaml.safe_load(SPEC.read_text())
    spec["name"] = "bench-order"  # events on a stream of its own, deleted at the end
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        workdir = Path(tmp)
        project = workdir / "order"
        copier.run_copy(
            str(REPO),
            str(project),
            data={"spec": spec, "database": "postgres"},
            defaults=True,
            unsafe=False,
            quiet=True,
            vcs_ref=args.vcs_ref,
        )
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        subprocess.run(["uv", "sync", "--quiet"], cwd=project, env=env, check=True)
        (project / "bench_inner.py").write_text(INNER)
        (project / "bench_tap.py").write_text(TAP)
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
                str(args.writers),
                str(args.backlog),
                str(args.rounds),
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
    print(
        f"order service, {report['writes']} writes per phase from {report['writers']} "
        f"writer(s), {report['database']}, NATS"
    )
    print(f"{'write latency':<22}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}")
    held = report["events_on_relay_held"]
    rows = (("events off", off), ("events on (outbox)", on), ("on, relay held", held))
    for label, row in rows:
        print(f"{label:<22}{row['mean_ms']:>10.3f}{row['p50_ms']:>10.3f}{row['p99_ms']:>10.3f}")
    added = on["mean_ms"] - off["mean_ms"]
    ratio = on["mean_ms"] / off["mean_ms"]
    print(f"added per write: {added:.3f} ms (mean); ratio on/off: {ratio:.2f}")
    print(
        f"of which the write itself (outbox row, envelope; relay held): "
        f"{held['mean_ms'] / off['mean_ms']:.2f}; the relay working meanwhile: "
        f"{on['mean_ms'] / held['mean_ms']:.2f}"
    )
    cpu = report["cpu_us_per_write"]
    print(
        f"CPU per write of the service's process (robust to the machine's load): off "
        f"{cpu['off']:.0f} us, on {cpu['on']:.0f} us (with the relay's work on its event), "
        f"held {cpu['held']:.0f} us; ratio on/off {cpu['on'] / cpu['off']:.2f}"
    )
    print(
        f"commit -> subscriber: {report['events_per_second']:.0f} events/s "
        f"({report['delivered']}/{report['writes']} delivered), "
        f"latency p50 {e2e['p50_ms']:.1f} ms, p99 {e2e['p99_ms']:.1f} ms"
    )
    drain = report["drain"]
    if drain:
        print(
            f"relay drain of a backlog: {drain['events_per_second']:.0f} events/s "
            f"({drain['delivered']}/{drain['events']} delivered)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
