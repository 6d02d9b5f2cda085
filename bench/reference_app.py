"""The hand-written reference of bench_data_path.py: the generated inventory service's Product
operations (read, list, create, update with If-Match, the discontinue/reactivate transitions)
written by hand on Starlette and asyncpg (or aiosqlite on SQLite), on the same tables and rows.

It does the same work per request as the generated service's data path, without its framework:
the same JSON shapes (decimals as strings, UTC datetimes), the ETag and If-Match checks, 404,
409, 412 and 422 as problem+json, a bearer token verified (EdDSA, issuer, audience, expiry,
scope; verified tokens cached) on writes, and an outbox row written in each write's
transaction (into `reference_outbox`, a copy of `event_outbox` no relay reads: the benchmark
measures the hand-written request path, not a relay). No middleware, no logging, no tracing.

Run by bench_data_path.py with the generated project's Python (it has Starlette, asyncpg,
aiosqlite and PyJWT): `uvicorn reference_app:app`, configured by DATABASE_URL (the SQLAlchemy URL
the service uses), AUTH_JWKS_FILE, AUTH_ISSUER and AUTH_AUDIENCE.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import decimal
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SERVICE = os.environ.get("SERVICE_NAME", "inventory")
COLUMNS = (
    "id, sku, name, price, stock, status, category_id, owner_id, created_at, updated_at, version"
)
SORTS = {"created_at", "updated_at", "sku", "name", "price", "stock", "status"}
STATUSES = {"ACTIVE", "DISCONTINUED"}
TRANSITIONS = {"discontinue": ("ACTIVE", "DISCONTINUED"), "reactivate": ("DISCONTINUED", "ACTIVE")}
SKU = re.compile(r"^[A-Z0-9-]+\Z")
CENTS = decimal.Decimal("0.01")


class Problem(Exception):  # noqa: N818 (as the generated service names it)
    def __init__(self, status: int, title: str, detail: str) -> None:
        self.status, self.title, self.detail = status, title, detail


def new_id() -> uuid.UUID:
    """A UUIDv7, as the generated service makes them."""
    millis = time.time_ns() // 1_000_000
    value = (millis & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10)) & ((1 << 80) - 1)
    value = (value & ~(0xF << 76)) | (0x7 << 76)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)
    return uuid.UUID(int=value)


def iso(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def as_json(row: Any) -> dict[str, Any]:
    """A row as the API shows it."""
    return {
        "id": str(row["id"]),
        "sku": row["sku"],
        "name": row["name"],
        "price": str(row["price"]),
        "stock": row["stock"],
        "status": row["status"],
        "category_id": None if row["category_id"] is None else str(row["category_id"]),
        "owner_id": None if row["owner_id"] is None else str(row["owner_id"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "version": row["version"],
    }


def outbox_values(event: str, item: dict[str, Any]) -> tuple[Any, ...]:
    """The values of the outbox row of `event` about `item`."""
    now = datetime.datetime.now(datetime.UTC)
    event_id = uuid.uuid4()
    envelope = {
        "id": str(event_id),
        "type": event,
        "source": SERVICE,
        "aggregate_type": "Product",
        "aggregate_id": item["id"],
        "version": item["version"],
        "occurred_at": iso(now),
        "trace": {},
        "payload": item,
    }
    return event_id, event, uuid.UUID(item["id"]), json.dumps(envelope), now


class Postgres:
    """The queries on PostgreSQL, through an asyncpg pool."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://")
        self.pool: Any = None

    async def start(self) -> None:
        import asyncpg

        self.pool = await asyncpg.create_pool(self.url, min_size=10, max_size=10)

    async def stop(self) -> None:
        await self.pool.close()

    async def get(self, row_id: uuid.UUID) -> Any:
        async with self.pool.acquire() as connection:
            return await connection.fetchrow(
                f"SELECT {COLUMNS} FROM products WHERE id = $1", row_id
            )

    async def page(self, status: str | None, sort: str, limit: int) -> list[Any]:
        column = sort.removeprefix("-")
        order = "DESC" if sort.startswith("-") else "ASC"
        where = "WHERE status = $2" if status else ""
        args = [limit, status] if status else [limit]
        async with self.pool.acquire() as connection:
            return list(
                await connection.fetch(
                    f"SELECT {COLUMNS} FROM products {where} "
                    f"ORDER BY {column} {order}, id {order} LIMIT $1",
                    *args,
                )
            )

    async def write(self, statement: str, args: tuple[Any, ...], event: str) -> Any:
        """Run a write returning the row, and its outbox row, in one transaction."""
        async with self.pool.acquire() as connection, connection.transaction():
            row = await connection.fetchrow(statement, *args)
            if row is None:
                return None
            item = as_json(row)
            await connection.execute(
                "INSERT INTO reference_outbox"
                " (event_id, type, aggregate_id, envelope, created_at, available_at, attempts)"
                " VALUES ($1, $2, $3, $4::json, $5, $5, 0)",
                *outbox_values(event, item),
            )
            return item

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        now = datetime.datetime.now(datetime.UTC)
        import asyncpg

        try:
            item = await self.write(
                f"INSERT INTO products (id, sku, name, price, stock, status, category_id,"
                f" owner_id, created_at, updated_at, version) VALUES"
                f" ($1, $2, $3, $4, $5, 'ACTIVE', NULL, NULL, $6, $6, 1) RETURNING {COLUMNS}",
                (new_id(), values["sku"], values["name"], values["price"], values["stock"], now),
                "ProductCreated",
            )
        except asyncpg.UniqueViolationError:
            raise Problem(409, "Conflict", "A Product with this sku exists.") from None
        assert item is not None
        return item

    async def update(
        self, row_id: uuid.UUID, stock: int, versions: list[int] | None
    ) -> dict[str, Any] | None:
        now = datetime.datetime.now(datetime.UTC)
        return await self.write(
            f"UPDATE products SET stock = $2, updated_at = $3, version = version + 1"
            f" WHERE id = $1 AND ($4::int[] IS NULL OR version = ANY($4::int[]))"
            f" RETURNING {COLUMNS}",
            (row_id, stock, now, versions),
            "ProductUpdated",
        )

    async def move(
        self, row_id: uuid.UUID, source: str, target: str, versions: list[int] | None
    ) -> dict[str, Any] | None:
        now = datetime.datetime.now(datetime.UTC)
        return await self.write(
            f"UPDATE products SET status = $3, updated_at = $4, version = version + 1"
            f" WHERE id = $1 AND status = $2"
            f" AND ($5::int[] IS NULL OR version = ANY($5::int[])) RETURNING {COLUMNS}",
            (row_id, source, target, now, versions),
            "ProductUpdated",
        )


class Sqlite:
    """The queries on SQLite, in the formats SQLAlchemy stores (hex ids, naive UTC text
    timestamps): one connection for reads, one for writes (a lock keeps one transaction)."""

    def __init__(self, url: str) -> None:
        self.path = url.split(":///", 1)[1]
        self.lock = asyncio.Lock()

    async def start(self) -> None:
        import aiosqlite

        self.reader = await aiosqlite.connect(self.path, isolation_level=None)
        self.writer = await aiosqlite.connect(self.path, isolation_level=None)
        for connection in (self.reader, self.writer):
            connection.row_factory = aiosqlite.Row
            await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA foreign_keys=ON")

    async def stop(self) -> None:
        await self.reader.close()
        await self.writer.close()

    @staticmethod
    def _row(row: Any) -> dict[str, Any] | None:
        if row is None:
            return None

        def stamp(text: str) -> datetime.datetime:
            return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)

        def ref(text: str | None) -> uuid.UUID | None:
            return None if text is None else uuid.UUID(text)

        return {
            **dict(row),
            "id": uuid.UUID(row["id"]),
            "price": decimal.Decimal(str(row["price"])).quantize(CENTS),
            "category_id": ref(row["category_id"]),
            "owner_id": ref(row["owner_id"]),
            "created_at": stamp(row["created_at"]),
            "updated_at": stamp(row["updated_at"]),
        }

    @staticmethod
    def _now() -> str:
        return datetime.datetime.now(datetime.UTC).replace(tzinfo=None).isoformat(" ")

    async def get(self, row_id: uuid.UUID) -> Any:
        async with self.reader.execute(
            f"SELECT {COLUMNS} FROM products WHERE id = ?", (row_id.hex,)
        ) as cursor:
            return self._row(await cursor.fetchone())

    async def page(self, status: str | None, sort: str, limit: int) -> list[Any]:
        column = sort.removeprefix("-")
        order = "DESC" if sort.startswith("-") else "ASC"
        where = "WHERE status = ?" if status else ""
        args = (status, limit) if status else (limit,)
        async with self.reader.execute(
            f"SELECT {COLUMNS} FROM products {where} ORDER BY {column} {order}, id {order} LIMIT ?",
            args,
        ) as cursor:
            return [self._row(row) for row in await cursor.fetchall()]

    async def write(self, statement: str, args: tuple[Any, ...], event: str) -> Any:
        async with self.lock:
            await self.writer.execute("BEGIN IMMEDIATE")
            try:
                async with self.writer.execute(statement, args) as cursor:
                    row = self._row(await cursor.fetchone())
                if row is None:
                    await self.writer.execute("ROLLBACK")
                    return None
                item = as_json(row)
                event_id, kind, aggregate, envelope, now = outbox_values(event, item)
                stamp = now.replace(tzinfo=None).isoformat(" ")
                await self.writer.execute(
                    "INSERT INTO reference_outbox"
                    " (event_id, type, aggregate_id, envelope, created_at, available_at,"
                    " attempts) VALUES (?, ?, ?, ?, ?, ?, 0)",
                    (event_id.hex, kind, aggregate.hex, envelope, stamp, stamp),
                )
                await self.writer.execute("COMMIT")
                return item
            except BaseException:
                await self.writer.execute("ROLLBACK")
                raise

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        import sqlite3

        now = self._now()
        try:
            item = await self.write(
                f"INSERT INTO products (id, sku, name, price, stock, status, category_id,"
                f" owner_id, created_at, updated_at, version) VALUES"
                f" (?, ?, ?, ?, ?, 'ACTIVE', NULL, NULL, ?, ?, 1) RETURNING {COLUMNS}",
                (
                    new_id().hex,
                    values["sku"],
                    values["name"],
                    float(values["price"]),
                    values["stock"],
                    now,
                    now,
                ),
                "ProductCreated",
            )
        except sqlite3.IntegrityError:
            raise Problem(409, "Conflict", "A Product with this sku exists.") from None
        assert item is not None
        return item

    @staticmethod
    def _versions(versions: list[int] | None) -> str:
        return "" if versions is None else f" AND version IN ({','.join(map(str, versions))})"

    async def update(
        self, row_id: uuid.UUID, stock: int, versions: list[int] | None
    ) -> dict[str, Any] | None:
        return await self.write(
            f"UPDATE products SET stock = ?, updated_at = ?, version = version + 1"
            f" WHERE id = ?{self._versions(versions)} RETURNING {COLUMNS}",
            (stock, self._now(), row_id.hex),
            "ProductUpdated",
        )

    async def move(
        self, row_id: uuid.UUID, source: str, target: str, versions: list[int] | None
    ) -> dict[str, Any] | None:
        return await self.write(
            f"UPDATE products SET status = ?, updated_at = ?, version = version + 1"
            f" WHERE id = ? AND status = ?{self._versions(versions)} RETURNING {COLUMNS}",
            (target, self._now(), row_id.hex, source),
            "ProductUpdated",
        )


URL = os.environ["DATABASE_URL"]
DB: Postgres | Sqlite = Sqlite(URL) if URL.startswith("sqlite") else Postgres(URL)
JWKS = json.loads(Path(os.environ["AUTH_JWKS_FILE"]).read_text())
KEYS = {key["kid"]: jwt.PyJWK(key) for key in JWKS["keys"]}
TOKENS: dict[str, tuple[float, frozenset[str]]] = {}


def problem(status: int, title: str, detail: str, path: str, **headers: str) -> Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body["instance"] = path
    return Response(
        json.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers or None,
    )


def answer(item: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(
        json.dumps(item),
        status_code=status,
        media_type="application/json",
        headers={"ETag": f'"{item["version"]}"', **headers},
    )


def authorize(request: Request, scope: str) -> None:
    """A verified bearer token granting `scope` (cached until it expires), or a 401/403."""
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        raise Problem(401, "Unauthorized", "A bearer token is required.")
    token = header[7:].strip()
    known = TOKENS.get(token)
    if known is None or known[0] <= time.time():
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(
                token,
                KEYS[kid].key,
                algorithms=["EdDSA"],
                audience=os.environ.get("AUTH_AUDIENCE", SERVICE),
                issuer=os.environ.get("AUTH_ISSUER"),
                options={"require": ["exp", "sub"]},
            )
        except (jwt.PyJWTError, KeyError):
            raise Problem(401, "Unauthorized", "The bearer token does not verify.") from None
        known = (float(claims["exp"]), frozenset(str(claims.get("scope", "")).split()))
        TOKENS[token] = known
    if scope not in known[1]:
        raise Problem(403, "Forbidden", f"The token lacks the scope {scope}.")


def row_id_of(request: Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params["product_id"])
    except ValueError:
        raise Problem(422, "Unprocessable Content", "product_id is not a UUID.") from None


def if_match(request: Request) -> list[int] | None:
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    versions = [
        int(text)
        for tag in header.split(",")
        if (text := tag.strip().removeprefix("W/").strip('"')).isdigit()
    ]
    if not versions:
        raise Problem(412, "Precondition Failed", "If-Match names no version.")
    return versions


async def body_of(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise Problem(422, "Unprocessable Content", "The body is not JSON.") from None
    if not isinstance(body, dict):
        raise Problem(422, "Unprocessable Content", "The body is not an object.")
    return body


async def missed(row_id: uuid.UUID, versions: list[int] | None) -> Problem:
    """Why a conditional write changed nothing: 404, 412 or 409."""
    row = await DB.get(row_id)
    if row is None:
        return Problem(404, "Not Found", f"Product {row_id} does not exist.")
    if versions is not None and row["version"] not in versions:
        return Problem(412, "Precondition Failed", f"Product {row_id} is at {row['version']}.")
    return Problem(409, "Conflict", f"Product {row_id} is {row['status']}.")


async def read(request: Request) -> Response:
    row_id = row_id_of(request)
    row = await DB.get(row_id)
    if row is None:
        raise Problem(404, "Not Found", f"Product {row_id} does not exist.")
    return answer(as_json(row))


async def listing(request: Request) -> Response:
    query = request.query_params
    unknown = set(query) - {"limit", "sort", "status", "cursor"}
    if unknown:
        raise Problem(422, "Unprocessable Content", f"Unknown parameters: {sorted(unknown)}.")
    try:
        limit = int(query.get("limit", "50"))
    except ValueError:
        limit = 0
    sort = query.get("sort", "created_at")
    status = query.get("status")
    if not 1 <= limit <= 200 or sort.removeprefix("-") not in SORTS:
        raise Problem(422, "Unprocessable Content", "limit or sort is not valid.")
    if status is not None and status not in STATUSES:
        raise Problem(422, "Unprocessable Content", "status is not valid.")
    rows = await DB.page(status, sort, limit + 1)
    cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = as_json(rows[-1])
        raw = json.dumps([sort, last[sort.removeprefix("-")], last["id"]], separators=(",", ":"))
        cursor = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    body = {"items": [as_json(row) for row in rows], "next_cursor": cursor}
    return Response(json.dumps(body), media_type="application/json")


async def create(request: Request) -> Response:
    authorize(request, "product:write")
    body = await body_of(request)
    try:
        price = decimal.Decimal(str(body["price"]))
        values = {
            "sku": str(body["sku"]),
            "name": str(body["name"]),
            "price": price,
            "stock": int(body.get("stock", 0)),
        }
    except (KeyError, ValueError, decimal.InvalidOperation):
        raise Problem(422, "Unprocessable Content", "sku, name and price are required.") from None
    if (
        not SKU.match(values["sku"])
        or len(values["sku"]) > 64
        or not 0 < len(values["name"]) <= 200
        or price < 0
        or price != price.quantize(CENTS)
        or not 0 <= values["stock"] <= 2**31 - 1
    ):
        raise Problem(422, "Unprocessable Content", "A field is out of its bounds.")
    item = await DB.create(values)
    return answer(item, 201, Location=f"/v1/products/{item['id']}")


async def update(request: Request) -> Response:
    authorize(request, "product:write")
    row_id, versions = row_id_of(request), if_match(request)
    body = await body_of(request)
    stock = body.get("stock")
    if set(body) != {"stock"} or not isinstance(stock, int) or not 0 <= stock <= 2**31 - 1:
        raise Problem(422, "Unprocessable Content", "Only a valid stock may change here.")
    item = await DB.update(row_id, stock, versions)
    if item is None:
        raise await missed(row_id, versions)
    return answer(item)


async def transition(request: Request) -> Response:
    authorize(request, "product:write")
    row_id, versions = row_id_of(request), if_match(request)
    if request.path_params["name"] not in TRANSITIONS:
        raise Problem(404, "Not Found", f"No transition {request.path_params['name']}.")
    source, target = TRANSITIONS[request.path_params["name"]]
    item = await DB.move(row_id, source, target, versions)
    if item is None:
        raise await missed(row_id, versions)
    return answer(item)


def routes() -> list[Route]:
    return [
        Route("/v1/products", listing, methods=["GET"]),
        Route("/v1/products", create, methods=["POST"]),
        Route("/v1/products/{product_id}", read, methods=["GET"]),
        Route("/v1/products/{product_id}", update, methods=["PATCH"]),
        Route(
            "/v1/products/{product_id}/{name:str}",
            transition,
            methods=["POST"],
        ),
    ]


async def on_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, Problem)
    return problem(error.status, error.title, error.detail, request.url.path)


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    await DB.start()
    yield
    await DB.stop()


app = Starlette(routes=routes(), lifespan=lifespan, exception_handlers={Problem: on_problem})
