"""Runtime overhead of the generated service's production stack: the same endpoint, bare and full.

    python bench/bench_runtime.py [--duration 10] [--rounds 3] [--connections 32]
                                  [--database auto|postgres|sqlite] [--loader auto|wrk|python]

What it does, in one run:
1. generates the inventory service (tests/specs/inventory_example.yaml) with Copier from
   this checkout into a temporary directory, `uv sync`s it, migrates a fresh database (PostgreSQL
   on 127.0.0.1:5432 when it answers, else SQLite) and inserts one product;
2. serves it with `python -m inventory_service serve` (uvicorn, 1 worker, loopback) with the whole
   stack on, as production runs it: APP_ENV=production with a JWKS file (auth checks every
   request; the read endpoint is public), rate limiting (a limit the run never reaches, so every
   request is checked and none refused), tracing with the default head sampling
   (parentbased_traceidratio, 10%) exported over OTLP/HTTP to a local sink that counts what it
   receives, Prometheus metrics, JSON access logs (to /dev/null);
3. serves the baseline, "bare": the same generated read endpoint (the service's own router,
   dependencies, repository and schema on the same engine and row) in a FastAPI app with nothing
   around it (no middleware, no telemetry, no auth, no rate limiting), under the same uvicorn;
   and, for reference only, "minimal": the same read written by hand without FastAPI's dependency
   injection (what the generated code's structure costs, apart from the stack);
4. loads the three alternately (warm-up, then rounds) with wrk when it is installed, else
   with a bounded asyncio HTTP/1.1 keep-alive load generator (raw sockets: an httpx client
   costs more CPU per request than the server under test, and would measure itself);
5. prints req/s, p50 and p99 for each (median over rounds) at `--connections` (throughput) and
   p50/p99 with one connection (latency: what the stack adds to one request), the throughput
   ratio and the added p50, against the targets (ratio >= 0.70, added p50 < 1 ms).
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import uuid
from pathlib import Path

from benchlib import (
    JWKS,
    POSTGRES,
    REPO,
    OtlpSink,
    Result,
    free_port,
    generate,
    load,
    pick_loader,
    postgres_answers,
    psql,
    run,
    stop,
    wait_ready,
)

SPEC = REPO / "tests" / "specs" / "inventory_example.yaml"
PACKAGE = "inventory_service"
TARGET_RATIO = 0.70
TARGET_ADDED_P50_MS = 1.0

# The baseline: the generated read endpoint (its router, dependencies, repository and schema)
# in a FastAPI app with nothing around it: no middleware, no telemetry, no auth, no rate limit.
BARE_APP = '''
"""The generated read endpoint in a bare FastAPI app: the production stack is all that differs."""
import os

from fastapi import FastAPI

from {pkg}.api.product import router
from {pkg}.database import create_engine, create_session_factory
from {pkg}.settings import get_settings

app = FastAPI()
app.state.settings = get_settings()
app.state.session_factory = create_session_factory(
    create_engine(os.environ["DATABASE_URL"], pool_size=10)
)
app.include_router(router)
'''

# A reference, not the target's baseline: the same read written by hand without FastAPI's
# dependency injection (what the generated code's structure costs on top of a bare app).
MINIMAL_APP = '''
"""The same read written by hand: no dependencies, no repository, no middleware."""
import os
import uuid

from fastapi import FastAPI, HTTPException, Response

from {pkg}.database import create_engine, create_session_factory
from {pkg}.models.product import Product
from {pkg}.schemas.product import ProductRead

engine = create_engine(os.environ["DATABASE_URL"], pool_size=10)
sessions = create_session_factory(engine)
app = FastAPI()


@app.get("/v1/products/{{product_id}}")
async def read_product(product_id: uuid.UUID, response: Response) -> ProductRead:
    async with sessions() as session:
        row = await session.get(Product, product_id)
    if row is None:
        raise HTTPException(404)
    response.headers["ETag"] = f'"{{row.version}}"'
    return ProductRead.model_validate(row)
'''

SEED = """
import asyncio, os, sys
from decimal import Decimal
from {pkg}.database import create_engine, create_session_factory
from {pkg}.models.product import Product

async def main() -> None:
    engine = create_engine(os.environ["DATABASE_URL"])
    async with create_session_factory(engine)() as session:
        row = Product(sku="BENCH-1", name="Benchmark product", price=Decimal("9.99"), stock=5)
        session.add(row)
        await session.commit()
        print(row.id)
    await engine.dispose()

asyncio.run(main())
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurement rounds of each app")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--database", choices=["auto", "postgres", "sqlite"], default="auto")
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--keep", action="store_true", help="keep the generated project")
    parser.add_argument("--template", default=str(REPO), help="the template (default: this repo)")
    parser.add_argument(
        "--project", help="an inventory service generated before (skips generation; profiling)"
    )
    args = parser.parse_args()
    loader = pick_loader(args.loader)
    database = args.database
    if database == "auto":
        database = "postgres" if postgres_answers() else "sqlite"
    if shutil.which("uv") is None:
        sys.exit("uv is needed to install the generated project")

    work = Path(tempfile.mkdtemp(prefix="bench-runtime-"))
    project = Path(args.project).resolve() if args.project else work / "inventory"
    processes: list[subprocess.Popen[bytes]] = []
    admin_db = None
    sink = None
    try:
        if not args.project:
            print(f"generating the inventory service in {project} ...", flush=True)
            generate(SPEC, project, args.template)
        python = str(project / ".venv" / "bin" / "python")

        if database == "postgres":
            admin_db = f"bench_runtime_{uuid.uuid4().hex[:10]}"
            psql(f'CREATE DATABASE "{admin_db}"')
            database_url = POSTGRES.rsplit("/", 1)[0] + f"/{admin_db}"
        else:
            database_url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
        base_env = {**os.environ, "DATABASE_URL": database_url}
        for name in list(base_env):
            if name.startswith(("OTEL_", "PROMETHEUS_", "APP_", "AUTH_", "RATE_LIMIT", "LOG_")):
                del base_env[name]
        run([python, "-m", PACKAGE, "migrate"], cwd=project, env=base_env)
        product_id = (
            run([python, "-c", SEED.format(pkg=PACKAGE)], cwd=project, env=base_env)
            .strip()
            .splitlines()[-1]
        )
        path = f"/v1/products/{product_id}"
        for module, source in (("bare_app", BARE_APP), ("minimal_app", MINIMAL_APP)):
            (project / f"{module}.py").write_text(textwrap.dedent(source.format(pkg=PACKAGE)))
        jwks = work / "jwks.json"
        jwks.write_text(run([python, "-c", JWKS], cwd=project))

        sink_port = free_port()
        sink = http.server.ThreadingHTTPServer(("127.0.0.1", sink_port), OtlpSink)
        threading.Thread(target=sink.serve_forever, daemon=True).start()

        ports = {"bare": free_port(), "minimal": free_port(), "full": free_port()}
        full_env = {
            **base_env,
            "APP_ENV": "production",
            "AUTH_JWKS_URL": jwks.as_uri(),
            "AUTH_ISSUER": "https://identity.bench.local",
            "RATE_LIMIT_DEFAULT": "100000000/minute",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
        }
        devnull = subprocess.DEVNULL
        for name in ("bare", "minimal"):
            processes.append(
                subprocess.Popen(
                    [
                        python,
                        "-m",
                        "uvicorn",
                        f"{name}_app:app",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ports[name]),
                        "--workers",
                        "1",
                        "--log-level",
                        "warning",
                        "--no-access-log",
                    ],
                    cwd=project,
                    env=base_env,
                    stdout=devnull,
                    stderr=devnull,
                )
            )
        full = subprocess.Popen(
            [python, "-m", PACKAGE, "serve", "--host", "127.0.0.1", "--port", str(ports["full"])],
            cwd=project,
            env=full_env,
            stdout=devnull,
            stderr=subprocess.PIPE,
        )
        processes.append(full)
        for name, process in zip(ports, processes, strict=True):
            wait_ready("127.0.0.1", ports[name], path, process)

        print(
            f"database: {database}; loader: {loader}; {args.connections} connections; "
            f"{args.rounds} rounds of {args.duration:g} s each; GET {path}",
            flush=True,
        )
        for port in ports.values():  # warm-up: imports, pools, caches
            load(loader, port, path, args.connections, 3)
        # Throughput at `connections` (the server saturated: p50 there is mostly queueing, about
        # connections / throughput), latency with one connection (the server idle between
        # requests: p50 there is the time one request takes, which the stack adds to).
        results: dict[str, list[Result]] = {name: [] for name in ports}
        latency: dict[str, list[Result]] = {name: [] for name in ports}
        for number in range(args.rounds):
            order = list(ports.items())
            if number % 2:
                order.reverse()
            for name, port in order:
                for table, connections, duration in (
                    (results, args.connections, args.duration),
                    (latency, 1, max(2.0, args.duration / 2)),
                ):
                    result = load(loader, port, path, connections, duration)
                    table[name].append(result)
                    print(
                        f"  round {number + 1} {name:7} -c{connections:<3}: {result.rps:8.0f} "
                        f"req/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms"
                        + (f"  non-2xx {result.non_2xx}" if result.non_2xx else ""),
                        flush=True,
                    )

        def median(rs: list[Result]) -> Result:
            return Result(
                statistics.median(r.rps for r in rs),
                statistics.median(r.p50_ms for r in rs),
                statistics.median(r.p99_ms for r in rs),
                sum(r.non_2xx for r in rs),
            )

        summary = {name: median(rs) for name, rs in results.items()}
        quiet = {name: median(rs) for name, rs in latency.items()}
        bare_r, full_r = summary["bare"], summary["full"]
        ratio = full_r.rps / bare_r.rps
        added = quiet["full"].p50_ms - quiet["bare"].p50_ms
        print()
        print(
            f"{'app':<9}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   (-c{args.connections})"
            f"{'p50 ms':>10}{'p99 ms':>10}   (-c1)"
        )
        for name, r in summary.items():
            q = quiet[name]
            print(
                f"{name:<9}{r.rps:>10.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}          "
                f"{q.p50_ms:>10.2f}{q.p99_ms:>10.2f}"
            )
        print(
            f"throughput ratio full/bare: {ratio:.2f} (target >= {TARGET_RATIO:.2f}) "
            f"{'OK' if ratio >= TARGET_RATIO else 'MISSED'}"
        )
        print(
            f"added p50, one connection: {added:.2f} ms (target < {TARGET_ADDED_P50_MS:.1f} ms) "
            f"{'OK' if added < TARGET_ADDED_P50_MS else 'MISSED'}; at -c{args.connections}: "
            f"{full_r.p50_ms - bare_r.p50_ms:.2f} ms"
        )
        print(
            f"for reference, full/minimal (the stack and the generated code's dependency "
            f"injection, against a hand-written read): {full_r.rps / summary['minimal'].rps:.2f}"
        )
        print(
            f"OTLP exports received from the full stack: {OtlpSink.exports} "
            f"({OtlpSink.bytes_received} bytes)"
        )
        bad = {name: r.non_2xx + quiet[name].non_2xx for name, r in summary.items()}
        if any(bad.values()):
            print(f"WARNING: non-2xx answers: {bad}")
            return 1
        return 0
    finally:
        stop(processes)
        if sink is not None:
            sink.shutdown()
        if admin_db is not None:
            psql(f'DROP DATABASE IF EXISTS "{admin_db}" WITH (FORCE)', check=False)
        if args.keep:
            print(f"kept {project}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
