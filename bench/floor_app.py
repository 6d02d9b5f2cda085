"""The floor of bench_data_path.py: reference_app.py's read by id, routed by FastAPI instead of
Starlette, as a FastAPI user would write it by hand (a typed path parameter, no middleware, no
logging, no tracing, the same asyncpg or aiosqlite access and JSON as the reference).

With the generated service's stack answering a fixed body (the `/bench/floor` route the
benchmark adds to the generated project's custom_routes.py), it tells what the framework and the
stack cost before any data work: the most a generated read could reach against the reference.
Run by bench_data_path.py like reference_app.py: `uvicorn floor_app:app`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from reference_app import DB, Problem, answer, as_json, on_problem
from starlette.responses import Response


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await DB.start()
    yield
    await DB.stop()


app = FastAPI(lifespan=lifespan, exception_handlers={Problem: on_problem})


@app.get("/v1/products/{row_id}")
async def read(row_id: uuid.UUID) -> Response:
    row = await DB.get(row_id)
    if row is None:
        raise Problem(404, "Not Found", f"Product {row_id} does not exist.")
    return answer(as_json(row))
