"""What the benchmarks that serve a generated service share: generating and syncing it, scratch
databases, serving and waiting for it, an OTLP sink, keys and tokens, and the load generators
(wrk when it is installed, else the bounded asyncio HTTP/1.1 keep-alive loader below).

Not a benchmark itself: bench_runtime.py and bench_data_path.py import it (they run as scripts,
so this directory is on their `sys.path`).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

JWKS = """
import base64, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench", "alg": "EdDSA", "use": "sig"}
print(json.dumps({"keys": [key]}))
"""

# A key pair (its JWKS printed) and a token signed with it: argv issuer, audience, scopes.
KEYS_AND_TOKEN = """
import base64, json, sys, time
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
issuer, audience, scopes = sys.argv[1], sys.argv[2], sys.argv[3]
private = Ed25519PrivateKey.generate()
raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench", "alg": "EdDSA", "use": "sig"}
now = int(time.time())
claims = {"iss": issuer, "aud": audience, "sub": "bench", "scope": scopes, "iat": now,
          "nbf": now, "exp": now + 3600}
token = jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": "bench"})
print(json.dumps({"jwks": {"keys": [key]}, "token": token}))
"""

# The fallback load generator, run in its own process so it has its own core, like wrk. Its
# argument is a JSON plan: host, port, connections, duration, method, path (a template with
# {id}), headers; optionally rows (each connection works on rows[c % len(rows)]), body (a
# template with {c} and {n}: the connection and its request number), prime (a path read once
# per connection first: its ETag, and its `status` field), if_match (send the last ETag seen),
# transitions (the path to take from each `status`, which each answer's body then updates)
# and expect (the statuses that count as success).
LOADER = r"""
import asyncio, json, sys, time

plan = json.loads(sys.argv[1])
host, port = plan["host"], plan["port"]
connections, duration = plan["connections"], plan["duration"]
method, headers = plan.get("method", "GET"), plan.get("headers", {})
rows, body_template = plan.get("rows") or [None], plan.get("body")
transitions, expect = plan.get("transitions"), set(plan.get("expect", [200]))
latencies = []
errors = 0
statuses = {}


def request(path, body, etag):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if etag is not None:
        lines.append(f"If-Match: {etag}")
    if body is not None:
        data = body.encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + data
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, etag = 0, False, None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"etag":
            etag = value.strip().decode()
    if not chunked:
        return status, etag, (await reader.readexactly(length) if length else b"")
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        parts.append(await reader.readexactly(size + 2))
        if size == 0:
            return status, etag, b"".join(p[:-2] for p in parts)


async def worker(c, deadline):
    global errors
    reader, writer = await asyncio.open_connection(host, port)
    row, etag, state, n = rows[c % len(rows)], None, None, 0
    try:
        if plan.get("prime"):
            writer.write(
                f"GET {plan['prime'].format(id=row)} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
            )
            _, etag, data = await answer(reader)
            state = json.loads(data).get("status")
        while True:
            start = time.perf_counter()
            if start >= deadline:
                return
            path = (transitions[state] if transitions else plan["path"]).format(id=row)
            body = body_template.format(c=c, n=n) if body_template is not None else None
            writer.write(request(path, body, etag if plan.get("if_match") else None))
            status, new_etag, data = await answer(reader)
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            n += 1
            if status in expect:
                etag = new_etag
                if transitions:
                    state = json.loads(data)["status"]
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
        errors += 1
    finally:
        writer.close()


async def main():
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(*(worker(c, deadline) for c in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    def q(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0
    print(json.dumps({"requests": len(latencies), "seconds": elapsed, "p50": q(0.50),
                      "p99": q(0.99), "errors": errors, "statuses": statuses,
                      "expect": sorted(expect)}))

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
    unexpected: dict[str, int] = field(default_factory=dict)
    """The built-in loader's unexpected answers by status (`error`: a broken connection)."""


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run `cmd`; its output; exit the benchmark with its output when it fails."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return str(done.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something listens on host:port."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def postgres_answers() -> bool:
    return answers(5432)


def generate(spec: Path, project: Path, template: str = str(REPO), name: str | None = None) -> None:
    """Generate the service of `spec` (renamed `name`: its own streams on a shared broker) into
    `project` with Copier from `template` (uncommitted changes included), `uv sync` it."""
    import yaml  # microforge's own dependency

    answers_file = project.parent / f"{project.name}-answers.yml"
    document = yaml.safe_load(spec.read_text())
    if name is not None:
        document["name"] = name
    answers_file.write_text(yaml.safe_dump({"spec": document}))
    copier = [sys.executable, "-m", "copier", "copy", "--quiet", "--defaults", "--overwrite"]
    run(
        [*copier, "--vcs-ref", "HEAD", "--data-file", str(answers_file), template, str(project)],
        cwd=project.parent,
    )
    run(["uv", "sync", "--quiet", "--no-dev"], cwd=project)


def psql(statement: str, check: bool = True) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", statement],
        check=check,
        capture_output=True,
    )


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A fresh database on the local PostgreSQL server (its SQLAlchemy URL), dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES.rsplit("/", 1)[0] + f"/{name}"
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


def stop(processes: list[subprocess.Popen[Any]]) -> None:
    """Stop the servers the benchmark started (SIGINT: a graceful shut-down), then wait."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(2)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


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


def wait_ready(url_host: str, port: int, path: str, process: subprocess.Popen[Any]) -> None:
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


def pick_loader(choice: str) -> str:
    """`wrk` when asked or (for `auto`) installed, else `python`."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return choice


def load(
    loader: str,
    port: int,
    path: str,
    connections: int,
    duration: float,
    headers: dict[str, str] | None = None,
) -> Result:
    """GET `path` (with `headers`) from `connections` keep-alive connections for `duration`
    seconds."""
    headers = headers or {}
    if loader == "wrk":
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(duration)}s",
                "--latency",
                *(option for k, v in headers.items() for option in ("-H", f"{k}: {v}")),
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
    plan = {"port": port, "path": path, "connections": connections, "headers": headers}
    return load_plan(plan, duration)


def load_plan(plan: dict[str, Any], duration: float) -> Result:
    """Run the built-in loader on `plan` (see LOADER) for `duration` seconds."""
    plan = {"host": "127.0.0.1", "duration": duration, **plan}
    out = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps(plan)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out)
    unexpected = {s: n for s, n in data["statuses"].items() if int(s) not in data["expect"]}
    if data["errors"]:
        unexpected["error"] = data["errors"]
    return Result(
        data["requests"] / data["seconds"],
        data["p50"] * 1000,
        data["p99"] * 1000,
        sum(unexpected.values()),
        unexpected,
    )
