"""Secrets and tokens of a local run: the admin login and the service clients' secrets (kept in
`.microforge/run/secrets.json`, random on the first run), service tokens obtained from the
issuer by the OAuth2 client-credentials grant, and the scratch PostgreSQL databases."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..run import RunError

SECRETS_FILE = "secrets.json"
POSTGRES_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
TOKEN_TIMEOUT = 15.0


def load_secrets(state: Path, system: str, clients: list[str]) -> dict[str, Any]:
    """The run's secrets: `admin_email`, `admin_password`, `clients` (client id -> secret);
    what is missing is made up and written back (mode 0600)."""
    path = state / SECRETS_FILE
    data: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise RunError(f"cannot read {path}: {error} (delete it to start afresh)") from None
        data = loaded if isinstance(loaded, dict) else {}
    before = json.dumps(data, sort_keys=True)
    data.setdefault("admin_email", f"admin@{system}.local")
    data.setdefault("admin_password", secrets.token_urlsafe(18))
    stored = data.get("clients")
    known: dict[str, Any] = stored if isinstance(stored, dict) else {}
    data["clients"] = {name: known.get(name) or secrets.token_urlsafe(24) for name in clients}
    if json.dumps(data, sort_keys=True) != before:
        state.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
    return data


class NoTokenEndpointError(Exception):
    """The issuer has no POST /v1/tokens (404/405): services run without service tokens."""


def client_credentials_token(issuer_url: str, client_id: str, secret: str) -> str:
    """An access token from `issuer_url`/v1/tokens by the client-credentials grant."""
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    request = urllib.request.Request(
        f"{issuer_url}/v1/tokens",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TOKEN_TIMEOUT) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code in (404, 405):
            raise NoTokenEndpointError(f"{issuer_url}/v1/tokens answered {error.code}") from None
        text = error.read().decode(errors="replace")[:300]
        raise RunError(
            f"the issuer refused a token to client {client_id!r}: {error.code} {text}"
        ) from None
    except (OSError, ValueError) as error:
        raise RunError(f"no token for client {client_id!r} from {issuer_url}: {error}") from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise RunError(f"{issuer_url}/v1/tokens answered no access_token for {client_id!r}")
    return token


def dev_token(
    python: str,
    project: Path,
    package: str,
    env: dict[str, str],
    scopes: list[str],
    subject: str,
    ttl: float,
) -> str:
    """A token of `package`'s development key (`python -m <package> dev-token`), for a system
    without an issuer: `env` names the key file every service shares."""
    command = [python, "-m", package, "dev-token", "--sub", subject, "--ttl", str(ttl)]
    for scope in scopes:
        command += ["--scope", scope]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RunError(f"`{package} dev-token` failed: {result.stderr.strip()[-300:]}")
    return lines[-1]


def postgres_database(system: str, service: str) -> str:
    """`<system>_<service>` as a PostgreSQL database name."""
    return f"{system}_{service}".replace("-", "_")


CREATE_DATABASE = """\
import asyncio, sys
import asyncpg

async def main(name, fresh):
    try:
        c = await asyncpg.connect('postgresql://postgres@127.0.0.1:5432/postgres', timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        sys.exit(f'PostgreSQL does not answer on 127.0.0.1:5432: {error}')
    try:
        if fresh:
            await c.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        found = await c.fetchval('SELECT 1 FROM pg_database WHERE datname = $1', name)
        if not found:
            await c.execute('CREATE DATABASE "%s"' % name)
    finally:
        await c.close()

asyncio.run(main(sys.argv[1], sys.argv[2] == 'fresh'))
"""


def create_postgres_database(
    python: str, project: Path, env: dict[str, str], name: str, *, fresh: bool = False
) -> str:
    """Create database `name` if missing (dropped first when `fresh`), with the service's own
    asyncpg; its URL."""
    result = subprocess.run(
        [python, "-c", CREATE_DATABASE, name, "fresh" if fresh else "keep"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise RunError(f"cannot create PostgreSQL database {name}: {detail[0]}")
    return f"{POSTGRES_SERVER}/{name}"
