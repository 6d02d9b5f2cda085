"""Runtime overhead of the generated service's production stack: the same endpoint, bare and full.

    python bench/bench_runtime.py [--duration 10] [--rounds 3] [--connections 32]
                                  [--database auto|postgres|sqlite] [--loader auto|wrk|python]

What it does, in one run:
1. generates the inventory service (blueprints/ecommerce/specs/inventory.yaml) with Copier from
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
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "blueprints" / "ecommerce" / "specs" / "inventory.yaml"
PACKAGE = "inventory_service"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
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

JWKS = """
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench", "alg": "EdDSA", "use": "sig"}
print(json.dumps({"keys": [key]}))
"""

# The fallback load generator: run in its own process so it has its own core, like wrk.
LOADER = r"""
import asyncio, json, sys, time

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
connections, duration = int(sys.argv[4]), float(sys.argv[5])
request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
latencies = []
errors = 0
statuses = {}

async def worker(deadline):
    global errors
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            start = time.perf_counter()
            if start >= deadline:
                return
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
    except (OSError, asyncio.IncompleteReadError):
        errors += 1
    finally:
        writer.close()

async def main():
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(worker(deadline) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    def q(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0
    print(json.dumps({"requests": len(latencies), "seconds": elapsed, "p50": q(0.50),
                      "p99": q(0.99), "errors": errors, "statuses": statuses}))

try:
    import uvloop
    uvloop.install()
except ImportError:
    pass
asyncio.run(main())
"""


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return str(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


class OtlpSink(http.server.BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports and counts them (proves spans leave the service)."""

    exports = 0
    bytes_received = 0

    def do_POST(self) -> None:
        size = int(self.headers.get("content-length") or 0)
        self.rfile.read(size)
        OtlpSink.exports += 1
        OtlpSink.bytes_received += size
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def wait_ready(url_host: str, port: int, path: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    request = f"GET {path} HTTP/1.1\r\nHost: {url_host}\r\nConnection: close\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                sock.sendall(request)
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"server on port {port} never answered 200 on {path}")


def parse_wrk_time(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def load(loader: str, port: int, path: str, connections: int, duration: float) -> Result:
    if loader == "wrk":
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(duration)}s",
                "--latency",
                f"http://127.0.0.1:{port}{path}",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p50 = parse_wrk_time(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        p99 = parse_wrk_time(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        return Result(rps, p50, p99, int(bad.group(1)) if bad else 0)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            "127.0.0.1",
            str(port),
            path,
            str(connections),
            str(duration),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    non_2xx = sum(n for status, n in data["statuses"].items() if not 200 <= int(status) < 300)
    return Result(
        data["requests"] / data["seconds"],
        data["p50"] * 1000,
        data["p99"] * 1000,
        non_2xx + data["errors"],
    )


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
    loader = args.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "python"
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
            import yaml  # microforge's own dependency

            answers = work / "answers.yml"
            answers.write_text(yaml.safe_dump({"spec": yaml.safe_load(SPEC.read_text())}))
            run(
                [
                    sys.executable,
                    "-m",
                    "copier",
                    "copy",
                    "--quiet",
                    "--defaults",
                    "--overwrite",
                    "--vcs-ref",
                    "HEAD",
                    "--data-file",
                    str(answers),
                    args.template,
                    str(project),
                ],
                cwd=work,
            )
            run(["uv", "sync", "--quiet", "--no-dev"], cwd=project)
        python = str(project / ".venv" / "bin" / "python")

        if database == "postgres":
            admin_db = f"bench_runtime_{uuid.uuid4().hex[:10]}"
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    f'CREATE DATABASE "{admin_db}"',
                ],
                check=True,
                capture_output=True,
            )
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
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if sink is not None:
            sink.shutdown()
        if admin_db is not None:
            subprocess.run(
                [
                    "psql",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-qc",
                    f'DROP DATABASE IF EXISTS "{admin_db}" WITH (FORCE)',
                ],
                check=False,
                capture_output=True,
            )
        if args.keep:
            print(f"kept {project}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
