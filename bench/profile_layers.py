"""Where a generated service's time goes, by layer, from a py-spy speedscope profile.

    python bench/profile_layers.py [--top N] PROFILE.speedscope.json [...]

bench_data_path.py --profile DIR writes the profiles (py-spy samples the generated service's
busy threads while one operation is loaded) and prints these summaries. Two views per profile:
- self: each sample counts for the layer of its innermost frame that belongs to a known layer
  (pydantic called by FastAPI counts as pydantic; the ORM's own work, as the ORM's, the driver
  it calls as the driver's);
- inclusive: the share of samples with the layer anywhere on the stack (FastAPI's dependency
  solving includes the session it opens; the middleware includes everything inside it);
- with `--top N`, the N functions (of the service, FastAPI, Starlette, SQLAlchemy, asyncpg,
  pydantic, OpenTelemetry, structlog) most often on the stack.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

# (layer, substrings of a frame's "file" or "function (file)") in the order they are tried.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging (structlog, logging, logs.py)", ("structlog/", "/logging/", "_service/logs.py")),
    ("tracing (opentelemetry)", ("opentelemetry/",)),
    ("metrics (prometheus_client, metrics.py)", ("prometheus_client/", "_service/metrics.py")),
    ("auth (security.py, jwt)", ("_service/security.py", "jwt/", "cryptography/")),
    ("rate limit (ratelimit.py, limits)", ("_service/ratelimit.py", "limits/")),
    ("events (relay, bus, faststream, nats)", ("_service/events/", "faststream/", "nats/")),
    ("pydantic validation/serialization", ("pydantic/", "pydantic_core/", "fastapi/encoders")),
    ("DB driver (asyncpg, aiosqlite, sqlite3)", ("asyncpg/", "aiosqlite/", "sqlite3/")),
    ("SQLAlchemy ORM (session, identity map, unit of work)", ("sqlalchemy/orm/",)),
    (
        "SQLAlchemy Core/engine/pool (compile, execute, results)",
        ("sqlalchemy/",),
    ),
    ("generated repository (crud.py, repositories/)", ("_service/crud.py", "repositories/")),
    ("generated API handlers (api/)", ("_service/api/",)),
    ("FastAPI routing and dependency injection", ("fastapi/",)),
    ("middleware and the service's other modules", ("starlette/middleware", "_service/")),
    ("Starlette routing/requests/responses", ("starlette/",)),
    ("uvicorn, HTTP parsing", ("uvicorn/", "httptools/", "h11/")),
    ("asyncio / event loop", ("asyncio/", "uvloop/", "anyio/")),
)
INCLUSIVE: tuple[tuple[str, str], ...] = (
    ("FastAPI dependency solving (solve_dependencies)", "solve_dependencies"),
    ("FastAPI response validation + serialization (serialize_response)", "serialize_response"),
    ("the endpoint function (run_endpoint_function)", "run_endpoint_function"),
    ("SQLAlchemy ORM anywhere on the stack", "sqlalchemy/orm/"),
    ("pydantic anywhere on the stack", "pydantic"),
    ("OpenTelemetry anywhere on the stack", "opentelemetry/"),
    ("logging anywhere on the stack", "structlog/"),
)


def layer_of(frame: str) -> str | None:
    for name, needles in LAYERS:
        if any(needle in frame for needle in needles):
            return name
    return None


TOP_PACKAGES = (
    "_service/",
    "fastapi/",
    "starlette/",
    "sqlalchemy/",
    "asyncpg/",
    "pydantic",
    "opentelemetry/",
    "structlog/",
)


def summarize(path: Path, top: int = 0) -> dict[str, object]:
    """Print and return the self and inclusive shares of `path`'s samples."""
    data = json.loads(path.read_text())
    frames = [f"{f.get('name', '')} ({f.get('file', '')})" for f in data["shared"]["frames"]]
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0.0
    for profile in data["profiles"]:
        weights = profile.get("weights") or [1] * len(profile["samples"])
        for stack, weight in zip(profile["samples"], weights, strict=True):
            names = [frames[i] for i in stack]
            total += weight
            for frame in reversed(names):  # innermost first
                layer = layer_of(frame)
                if layer is not None:
                    self_time[layer] += weight
                    break
            else:
                self_time["other (the interpreter, threads)"] += weight
            for name in set(names):
                if any(package in name for package in TOP_PACKAGES):
                    functions[name] += weight
            joined = "\n".join(names)
            for label, needle in INCLUSIVE:
                if needle in joined:
                    inclusive[label] += weight
    print(f"\n{path.name}: {total:.1f} s of samples")
    if not total:
        return {}
    print("  self time by layer:")
    for layer, weight in self_time.most_common():
        print(f"    {100 * weight / total:5.1f}%  {layer}")
    print("  inclusive:")
    for label, _ in INCLUSIVE:
        print(f"    {100 * inclusive[label] / total:5.1f}%  {label}")
    if top:
        print(f"  the {top} functions most often on the stack:")
        for name, weight in functions.most_common(top):
            short = re.sub(r"\(/\S*?(site-packages|src)/", "(", name)
            print(f"    {100 * weight / total:5.1f}%  {short}")
    return {
        "samples": total,
        "self": {k: v / total for k, v in self_time.items()},
        "inclusive": {k: v / total for k, v in inclusive.items()},
    }


if __name__ == "__main__":
    arguments = sys.argv[1:]
    count = 0
    if arguments[:1] == ["--top"]:
        count, arguments = int(arguments[1]), arguments[2:]
    for argument in arguments:
        summarize(Path(argument), count)
