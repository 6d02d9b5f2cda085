"""The generated data path against a hand-written reference: reads (cached too), list and writes.

    python bench/bench_data_path.py [--duration 5] [--rounds 1] [--connections 32]
                                    [--database both|postgres|sqlite] [--loader auto|wrk|python]
                                    [--operations read,floor,cached_read,list,create,
                                                  update,transition]
                                    [--rows 2000] [--redis] [--profile DIR] [--keep]
                                    [--project DIR]

What it does, in one run (about 2 minutes with the defaults):
1. generates the inventory service (tests/specs/inventory_example.yaml: two entities,
   Product with an enum state machine, events on; renamed datapath-bench, so that its events
   go to a NATS stream of its own, deleted at the end) with Copier from this checkout (uncommitted
   changes included) and `uv sync`s it;
2. for each database (PostgreSQL on 127.0.0.1:5432, a scratch database dropped at the end; and a
   SQLite file): migrates it, adds `reference_outbox` (a copy of `event_outbox`), inserts
   `--rows` products (80% ACTIVE, prices spread), and serves, on the same database and rows:
   - "generated": `python -m datapath_bench_service serve` with the whole stack on, as bench_runtime
     serves it: APP_ENV=production with a JWKS file (writes carry a bearer token the service
     verifies), rate limiting checked (a limit never reached), tracing exported over OTLP to a
     local sink, Prometheus metrics, JSON logs, and the events runtime (NATS on 127.0.0.1:4222
     when it answers, else the in-memory broker) relaying each write's outbox row;
   - "reference": bench/reference_app.py, the same operations written by hand on Starlette and
     asyncpg (aiosqlite on SQLite): same JSON, ETag, If-Match, problem+json, token check and an
     outbox row per write, no framework (see its docstring);
3. loads each operation on both, one after the other (the order alternates by round), from
   `--connections` keep-alive connections for `--duration` seconds: wrk for the reads when it is
   installed, else (and always for the writes, which need a body, an If-Match per connection
   and the state of the row) bench/benchlib.py's asyncio loader in its own process:
   - read: `GET /v1/products/{id}` (one row) with `Cache-Control: no-cache`, which makes the
     generated service read the database past its read cache (Product has `cache: {ttl: 60s}`
     in the spec; the reference has no cache and ignores the header);
   - floor: what a read costs before its data work: the generated service's `/bench/floor/{id}`
     (a route the benchmark adds to the project's custom_routes.py, answering a fixed body
     through the whole stack), and the reference's read routed by FastAPI (bench/floor_app.py,
     a third app), each against the reference's read;
   - cached_read: the same read without the header: the generated service answers from its
     read cache (in process: the benchmark sets no REDIS_URL), the reference from the database;
   - list: `GET /v1/products?status=ACTIVE&sort=-price&limit=20` (a filter and a sort);
   - create: `POST /v1/products` (a new sku each time; a row and an outbox row);
   - update: `PATCH /v1/products/{id}` with `If-Match` (each connection its own row, sending the
     ETag of its last answer);
   - transition: `POST /v1/products/{id}/discontinue` and `/reactivate` alternately, with
     `If-Match` (each connection its own row);
4. prints req/s, p50 and p99 of each and the throughput ratio generated/reference, against the
   targets of issue 13 (reads and lists >= 0.6, writes >= 0.5); non-2xx answers are counted and
   make the run fail.

`--redis` gives the generated service REDIS_URL=redis://127.0.0.1:6379/0 (its read cache and
rate-limit counts then live in Redis, as with several replicas).
`--profile DIR` also samples the generated service with py-spy (`uvx py-spy`, fetched from PyPI
by uv on first use) while the read, list and create loads run, and writes one speedscope
profile per operation and database into DIR (open them at https://www.speedscope.app), with a
summary by layer (see bench/README-data-path.md for what it showed).
The machine's other work makes the figures noisy: compare the two apps of one run only.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchlib import (
    KEYS_AND_TOKEN,
    REPO,
    OtlpSink,
    Result,
    answers,
    free_port,
    generate,
    load,
    load_plan,
    pick_loader,
    postgres_answers,
    run,
    scratch_postgres,
    stop,
    wait_ready,
)

SPEC = REPO / "tests" / "specs" / "inventory_example.yaml"
NAME = "datapath-bench"
"""The inventory spec renamed: its events go to streams of its own, deleted at the end."""
PACKAGE = "datapath_bench_service"
ISSUER = "https://identity.bench.local"
OPERATIONS = ("read", "floor", "cached_read", "list", "create", "update", "transition")
TARGETS: dict[str, float | None] = {
    "floor": None,
    "read": 0.6,
    "cached_read": 0.6,
    "list": 0.6,
    "create": 0.5,
    "update": 0.5,
    "transition": 0.5,
}
REDIS_URL = "redis://127.0.0.1:6379/0"
NO_CACHE = {"Cache-Control": "no-cache"}
"""What a read sends to get the database's row past the generated service's read cache."""
LIST_PATH = "/v1/products?status=ACTIVE&sort=-price&limit=20"
APPS = ("generated", "reference")
FLOOR_APPS = ("generated", "reference", "fastapi")
"""The floor's apps: the service's stack with no data work, the reference's read, and that read
routed by FastAPI (bench/floor_app.py)."""
FLOOR_ROUTE = """

# Added by bench/bench_data_path.py: the service's whole stack (middleware, tracing, logs,
# metrics, rate limit, FastAPI routing) answering a fixed body: the floor of a generated read.
import uuid as _uuid  # noqa: E402

from starlette.responses import Response as _Response  # noqa: E402

_FLOOR_BODY = (
    b'{"id": "01a240f0-cda0-7dd5-973c-af743cee9ea5", "sku": "BENCH-0", "name": "Bench 0", '
    b'"price": "12.50", "stock": 3, "status": "ACTIVE", "category_id": null, "owner_id": null, '
    b'"created_at": "2026-12-04T12:00:00Z", "updated_at": "2026-12-04T12:00:00Z", "version": 1}'
)


@router.get("/bench/floor/{row_id}", include_in_schema=False)
async def bench_floor(row_id: _uuid.UUID) -> _Response:
    return _Response(_FLOOR_BODY, media_type="application/json", headers={"ETag": '"1"'})
"""
PSQL = ("psql", "-h", "127.0.0.1", "-U", "postgres")
UVICORN = ("--workers", "1", "--log-level", "warning", "--no-access-log")
PROFILED = frozenset({"read", "list", "create"})
GROUP_PREFIX = f"bench-data-path-{uuid.uuid4().hex[:8]}"
"""The generated service's consumer groups: this run's own, deleted at its end."""

# Deletes what the run left on NATS: the durable consumers of its consumer groups (argv: the
# prefix) and its service's stream.
CLEAN_NATS = """
import asyncio, contextlib, sys
from {pkg}.events.bus import EventBus, stream_name
from {pkg}.events.consumers import SUBSCRIPTIONS
from {pkg}.events.envelope import SERVICE

async def main():
    bus = EventBus("nats://127.0.0.1:4222", SERVICE, group_prefix=sys.argv[1])
    await bus.start()
    with contextlib.suppress(Exception):
        await bus.delete_groups({{s.handler: s.subject for s in SUBSCRIPTIONS}})
    with contextlib.suppress(Exception):
        await bus.broker.config.connection_state.stream.delete_stream(stream_name(SERVICE))
    await bus.stop()

asyncio.run(main())
"""

# Inserts the products through the generated models (one executemany); prints their ids.
SEED = """
import asyncio, json, os, random, sys
from decimal import Decimal
import sqlalchemy as sa
from {pkg}.database import create_engine, new_id, utcnow
from {pkg}.models.product import Product

async def main(count):
    engine = create_engine(os.environ["DATABASE_URL"])
    rng = random.Random(13)
    now = utcnow()
    rows = [
        {{"id": new_id(), "sku": f"SEED-{{i}}", "name": f"Seeded product {{i}}",
          "price": Decimal(rng.randrange(100, 100000)) / 100, "stock": rng.randrange(0, 500),
          "status": "ACTIVE" if i % 5 else "DISCONTINUED", "created_at": now,
          "updated_at": now, "version": 1}}
        for i in range(count)
    ]
    async with engine.begin() as connection:
        await connection.execute(sa.insert(Product.__table__), rows)
    await engine.dispose()
    print(json.dumps([str(row["id"]) for row in rows if row["status"] == "ACTIVE"]))

asyncio.run(main(int(sys.argv[1])))
"""


def add_reference_outbox(database_url: str, work: Path) -> None:
    """`reference_outbox`: the outbox of the reference, a copy of `event_outbox`."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split(":///", 1)[1]) as connection:
            (ddl,) = connection.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'event_outbox'"
            ).fetchone()
            connection.execute(ddl.replace("event_outbox", "reference_outbox", 1))
        return
    name = database_url.rsplit("/", 1)[1]
    subprocess.run(
        [
            *PSQL,
            "-d",
            name,
            "-qc",
            "CREATE TABLE reference_outbox (LIKE event_outbox INCLUDING ALL)",
        ],
        check=True,
        capture_output=True,
    )


@contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    if kind == "postgres":
        with scratch_postgres("bench_data_path") as url:
            yield url
    else:
        yield f"sqlite+aiosqlite:///{work / 'bench.db'}"


def plans(ids: list[str], connections: int, token: str, tag: str) -> dict[str, dict[str, Any]]:
    """What the loader does for each write operation (reads go through `load`)."""
    auth = {"Authorization": f"Bearer {token}"}
    update_rows = ids[1 : 1 + connections]
    transition_rows = ids[1 + connections : 1 + 2 * connections]
    return {
        "create": {
            "method": "POST",
            "path": "/v1/products",
            "headers": auth,
            "body": '{{"sku": "B' + tag + '-{c}-{n}", "name": "Bench product", '
            '"price": "12.50", "stock": 3}}',
            "expect": [201],
        },
        "update": {
            "method": "PATCH",
            "path": "/v1/products/{id}",
            "headers": auth,
            "rows": update_rows,
            "prime": "/v1/products/{id}",
            "if_match": True,
            "body": '{{"stock": {n}}}',
            "expect": [200],
        },
        "transition": {
            "method": "POST",
            "headers": auth,
            "rows": transition_rows,
            "prime": "/v1/products/{id}",
            "if_match": True,
            "transitions": {
                "ACTIVE": "/v1/products/{id}/discontinue",
                "DISCONTINUED": "/v1/products/{id}/reactivate",
            },
            "expect": [200],
        },
    }


def measure(
    operation: str,
    loader: str,
    port: int,
    read_path: str,
    write_plans: dict[str, dict[str, Any]],
    connections: int,
    duration: float,
) -> Result:
    if operation == "read":
        return load(loader, port, read_path, connections, duration, NO_CACHE)
    if operation == "floor":  # the generated service's /bench/floor route: no data work
        floor_path = read_path.replace("/v1/products/", "/bench/floor/")
        return load(loader, port, floor_path, connections, duration, NO_CACHE)
    if operation == "cached_read":
        return load(loader, port, read_path, connections, duration)
    if operation == "list":
        return load(loader, port, LIST_PATH, connections, duration)
    plan = {**write_plans[operation], "port": port, "connections": connections}
    return load_plan(plan, duration)


@contextmanager
def profiling(pid: int, target: Path | None, seconds: float) -> Iterator[None]:
    """Sample process `pid` with py-spy into `target` (speedscope JSON) while the block runs."""
    if target is None:
        yield
        return
    command = ["uvx", "py-spy", "record", "--pid", str(pid), "--format", "speedscope"]
    command += ["--output", str(target), "--duration", str(int(seconds) + 1), "--rate", "250"]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            _, err = spy.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        if spy.returncode != 0:
            print(f"  py-spy failed: {err.decode()[-500:]}", flush=True)


def serve(
    project: Path,
    database_url: str,
    workdir: Path,
    sink_port: int,
    token_claims: dict[str, Any],
    redis_url: str | None,
    apps: tuple[str, ...],
) -> tuple[dict[str, subprocess.Popen[bytes]], dict[str, int]]:
    python = str(project / ".venv" / "bin" / "python")
    jwks = workdir / "jwks.json"
    jwks.write_text(json.dumps(token_claims["jwks"]))
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "PROMETHEUS_", "APP_", "AUTH_", "RATE_LIMIT", "LOG_"))
        and key not in {"VIRTUAL_ENV", "BROKER_URL", "DATABASE_URL", "REDIS_URL"}
    }
    broker = "nats://127.0.0.1:4222" if answers(4222) else "memory://"
    environments = {
        "generated": {
            **base,
            "DATABASE_URL": database_url,
            "APP_ENV": "production",
            "AUTH_JWKS_URL": jwks.as_uri(),
            "AUTH_ISSUER": ISSUER,
            "RATE_LIMIT_DEFAULT": "100000000/minute",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "BROKER_URL": broker,
            "EVENT_GROUP_PREFIX": GROUP_PREFIX,
            "EVENT_CONSUME_FROM": "new",  # not the events other runs left in the streams
            **({"REDIS_URL": redis_url} if redis_url else {}),
        },
        "reference": {
            **base,
            "DATABASE_URL": database_url,
            "AUTH_JWKS_FILE": str(jwks),
            "AUTH_ISSUER": ISSUER,
            "AUTH_AUDIENCE": NAME,
            "SERVICE_NAME": NAME,
        },
    }
    environments["fastapi"] = environments["reference"]
    ports = {name: free_port() for name in apps}
    commands = {
        "generated": [python, "-m", PACKAGE, "serve", "--host", "127.0.0.1"],
        "reference": [
            *(python, "-m", "uvicorn", "reference_app:app", "--app-dir", str(REPO / "bench")),
            *("--host", "127.0.0.1", *UVICORN),
        ],
        "fastapi": [
            *(python, "-m", "uvicorn", "floor_app:app", "--app-dir", str(REPO / "bench")),
            *("--host", "127.0.0.1", *UVICORN),
        ],
    }
    processes = {
        name: subprocess.Popen(
            [*commands[name], "--port", str(ports[name])],
            cwd=project,
            env=environments[name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in apps
    }
    print(f"  broker of the generated service: {broker}", flush=True)
    return processes, ports


def bench_database(
    kind: str, project: Path, work: Path, args: argparse.Namespace, loader: str, sink_port: int
) -> dict[str, dict[str, Result]]:
    python = str(project / ".venv" / "bin" / "python")

    def apps_of(op: str) -> tuple[str, ...]:
        return FLOOR_APPS if op == "floor" else APPS

    results: dict[str, dict[str, list[Result]]] = {
        op: {a: [] for a in apps_of(op)} for op in args.ops
    }
    serving = FLOOR_APPS if "floor" in args.ops else APPS
    with database(kind, work) as url:
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        env["DATABASE_URL"] = url
        run([python, "-m", PACKAGE, "migrate"], cwd=project, env=env)
        add_reference_outbox(url, work)
        ids = json.loads(
            run([python, "-c", SEED.format(pkg=PACKAGE), str(args.rows)], cwd=project, env=env)
            .strip()
            .splitlines()[-1]
        )
        if len(ids) < 1 + 2 * args.connections:
            sys.exit(f"--rows {args.rows} is too few for {args.connections} connections")
        scopes = "product:write"
        keys = json.loads(run([python, "-c", KEYS_AND_TOKEN, ISSUER, NAME, scopes], work))
        read_path = f"/v1/products/{ids[0]}"
        redis_url = REDIS_URL if args.redis else None
        processes, ports = serve(project, url, work, sink_port, keys, redis_url, serving)
        try:
            for name in serving:
                wait_ready("127.0.0.1", ports[name], read_path, processes[name])
            print(
                f"{kind}: {args.connections} connections, {args.rounds} round(s) of "
                f"{args.duration:g} s per operation and app; loader {loader} (writes: python)",
                flush=True,
            )
            for name in serving:  # warm-up: imports, pools, caches
                load(loader, ports[name], read_path, args.connections, 2)
                if name == "fastapi":
                    continue
                warm = plans(ids, args.connections, keys["token"], f"W{name[0]}{kind[0]}")
                load_plan({**warm["create"], "port": ports[name], "connections": 4}, 1)
            for number in range(args.rounds):
                for op in args.ops:
                    order = list(apps_of(op))
                    if number % 2:
                        order.reverse()
                    for name in order:
                        tag = f"{name[0]}{kind[0]}{number}".upper()
                        write_plans = plans(ids, args.connections, keys["token"], tag)
                        target = None
                        if args.profile and name == "generated" and op in PROFILED:
                            target = (
                                Path(args.profile) / f"{kind}-{op}-{number + 1}.speedscope.json"
                            )
                        with profiling(processes[name].pid, target, args.duration):
                            result = measure(
                                "read" if op == "floor" and name != "generated" else op,
                                loader,
                                ports[name],
                                read_path,
                                write_plans,
                                args.connections,
                                args.duration,
                            )
                        results[op][name].append(result)
                        print(
                            f"  round {number + 1} {op:<10} {name:<9}: {result.rps:8.0f} req/s"
                            f"  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
                            + (f"  unexpected {result.unexpected}" if result.non_2xx else ""),
                            flush=True,
                        )
        finally:
            stop(list(processes.values()))

    def median(rs: list[Result]) -> Result:
        return Result(
            statistics.median(r.rps for r in rs),
            statistics.median(r.p50_ms for r in rs),
            statistics.median(r.p99_ms for r in rs),
            sum(r.non_2xx for r in rs),
        )

    return {op: {name: median(rs) for name, rs in by_app.items()} for op, by_app in results.items()}


def report(kind: str, summary: dict[str, dict[str, Result]]) -> int:
    print()
    print(f"{kind}: generated against the hand-written reference (same run, same rows)")
    head = f"{'operation':<11}{'generated req/s':>16}{'p50':>8}{'p99':>8}"
    head += f"{'reference req/s':>17}{'p50':>8}{'p99':>8}{'ratio':>8}{'target':>8}"
    print(head)
    bad = 0
    for op, by_app in summary.items():
        gen, ref = by_app["generated"], by_app["reference"]
        ratio = gen.rps / ref.rps if ref.rps else 0.0
        target = TARGETS[op]
        if target is None:
            continue
        verdict = "OK" if ratio >= target else "MISSED"
        print(
            f"{op:<11}{gen.rps:>16.0f}{gen.p50_ms:>8.1f}{gen.p99_ms:>8.1f}"
            f"{ref.rps:>17.0f}{ref.p50_ms:>8.1f}{ref.p99_ms:>8.1f}{ratio:>8.2f}"
            f"{'>= ' + format(target, '.1f'):>8} {verdict}"
        )
        bad += gen.non_2xx + ref.non_2xx
    print("(p50 and p99 in ms; ratio: generated req/s / reference req/s)")
    if "floor" in summary:
        bad += floor_report(summary["floor"], summary.get("read", {}).get("generated"))
    if bad:
        print(f"WARNING: {bad} unexpected answers (see the rounds above)")
    return bad


def floor_report(floor: dict[str, Result], generated_read: Result | None) -> int:
    """What the framework and the stack cost before any data work, against the reference's
    read: the most a generated read could reach."""
    ref = floor["reference"]
    rows = [
        ("reference read (Starlette + asyncpg, by hand)", ref),
        ("the same read routed by FastAPI (floor_app.py)", floor["fastapi"]),
        ("the service's stack, a fixed body, no data work", floor["generated"]),
    ]
    if generated_read is not None:
        rows.append(("the generated read (past its cache)", generated_read))
    print("the floor: what a read costs before its data work, against the reference's read")
    for label, result in rows:
        ratio = result.rps / ref.rps if ref.rps else 0.0
        print(f"  {label:<50}{result.rps:>8.0f} req/s  p50 {result.p50_ms:6.1f} ms  {ratio:5.2f}")
    return sum(result.non_2xx for result in floor.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=1, help="measurement rounds of each app")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", choices=["both", "postgres", "sqlite"], default="both")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--operations", default=",".join(OPERATIONS))
    parser.add_argument("--rows", type=int, default=2000, help="products in the table")
    parser.add_argument("--profile", help="a directory for py-spy profiles of the generated app")
    parser.add_argument(
        "--redis", action="store_true", help="the generated service's read cache in Redis"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated project")
    parser.add_argument("--template", default=str(REPO), help="the template (default: this repo)")
    parser.add_argument(
        "--project", help="a project this benchmark generated before and kept (--keep)"
    )
    args = parser.parse_args()
    args.ops = [op for op in args.operations.split(",") if op]
    if unknown := set(args.ops) - set(OPERATIONS):
        parser.error(f"unknown operations: {sorted(unknown)}")
    loader = pick_loader(args.loader)
    if shutil.which("uv") is None:
        sys.exit("uv is needed to install the generated project")
    kinds = ["postgres", "sqlite"] if args.database == "both" else [args.database]
    if args.redis and not answers(6379):
        sys.exit("--redis: no Redis answers on 127.0.0.1:6379")
    if "postgres" in kinds and not postgres_answers():
        if args.database == "postgres":
            sys.exit("PostgreSQL does not answer on 127.0.0.1:5432")
        print("PostgreSQL does not answer on 127.0.0.1:5432: SQLite only")
        kinds.remove("postgres")
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)

    work = Path(tempfile.mkdtemp(prefix="bench-data-path-"))
    project = Path(args.project).resolve() if args.project else work / "inventory"
    sink = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), OtlpSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        if not args.project:
            print(f"generating the inventory service in {project} ...", flush=True)
            generate(SPEC, project, args.template, NAME)
        custom_routes = project / "src" / PACKAGE / "custom_routes.py"
        if "/bench/floor/" not in custom_routes.read_text():
            custom_routes.write_text(custom_routes.read_text() + FLOOR_ROUTE)
        summaries = {
            kind: bench_database(kind, project, work, args, loader, sink.server_address[1])
            for kind in kinds
        }
        if answers(4222):
            python = str(project / ".venv" / "bin" / "python")
            subprocess.run(
                [python, "-c", CLEAN_NATS.format(pkg=PACKAGE), GROUP_PREFIX],
                cwd=project,
                capture_output=True,
                check=False,
            )
        bad = sum(report(kind, summary) for kind, summary in summaries.items())
        print(f"\nOTLP exports received from the generated service: {OtlpSink.exports}")
        if args.profile:
            from profile_layers import summarize

            for path in sorted(Path(args.profile).glob("*.speedscope.json")):
                summarize(path)
        return 1 if bad else 0
    finally:
        sink.shutdown()
        if args.keep:
            print(f"kept {project}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
