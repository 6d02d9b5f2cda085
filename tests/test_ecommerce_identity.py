"""The e-commerce identity service (blueprints/ecommerce: specs/identity.yaml and its code
overlay code/identity) generated with its overlay in place: ruff, ruff format, mypy and its own
tests (tests/custom, with the generated OpenAPI and domain-hook tests); then served as the local
runner serves it (ADMIN_EMAIL, ADMIN_PASSWORD, SERVICE_CLIENTS, AUTH_ISSUER and AUTH_JWKS_URL on
itself), where registration, the three grants, the JWKS (checked with pyjwt in the service's
environment), key rotation by its command and login throttling are driven over HTTP.

The service's whole suite (schemathesis and hostile input included) is run by the template's
own tests for generated projects; this is the cheap proof of the blueprint's identity."""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from generation import REPO, Served, copier_copy, load_yaml, run

pytestmark = pytest.mark.generated

ECOMMERCE = REPO / "blueprints" / "ecommerce"
JWKS = "/.well-known/jwks.json"
ADMIN = ("admin@shop.local", "admin-password-of-this-test")
CLIENTS = {"order": {"secret": "order-secret", "scopes": ["inventory:reserve", "payment:charge"]}}
VERIFY = """
import json, sys, urllib.request, jwt
jwks = json.load(urllib.request.urlopen(sys.argv[1] + "/.well-known/jwks.json"))
token = sys.argv[2]
key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=sys.argv[3], issuer=sys.argv[1])
print(json.dumps(claims))
"""


def call(
    method: str,
    url: str,
    body: Any = None,
    token: str | None = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON answer and headers (lower-cased names) of an HTTP call."""
    data, sent = None, dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read() or b"null")
            return response.status, answer, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        answer = json.loads(error.read() or b"null")
        return error.code, answer, {k.lower(): v for k, v in error.headers.items()}


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The service generated from its spec, the overlay copied over it, synced once."""
    root = tmp_path_factory.mktemp("ecommerce-identity")
    spec = load_yaml(ECOMMERCE / "specs" / "identity.yaml")
    project = copier_copy(spec, root / "identity", database="postgres")
    overlay = ECOMMERCE / "code" / "identity"
    for source in overlay.rglob("*"):
        if source.is_file() and "__pycache__" not in source.parts:
            target = project / source.relative_to(overlay)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    run(project, "uv", "sync", "--quiet")
    return project


def test_identity_passes_its_checks_with_the_overlay(identity: Path) -> None:
    run(identity, "uv", "run", "ruff", "check", ".")
    run(identity, "uv", "run", "ruff", "format", "--check", ".")
    run(identity, "uv", "run", "mypy")
    run(
        identity,
        *("uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"),
        *("tests/custom", "tests/test_openapi.py", "tests/test_domain_hooks.py"),
    )


def test_identity_served_as_the_runner_serves_it(identity: Path, tmp_path: Path) -> None:
    served = Served(
        identity,
        "identity_service",
        tmp_path,
        ADMIN_EMAIL=ADMIN[0],
        ADMIN_PASSWORD=ADMIN[1],
        SERVICE_CLIENTS=json.dumps(CLIENTS),
    )
    url = served.url
    served.env.update({"AUTH_ISSUER": url, "AUTH_JWKS_URL": url + JWKS})
    try:
        served.start()
        status, jwks, _ = call("GET", url + JWKS)
        assert status == 200, jwks
        assert len(jwks["keys"]) == 1  # made at start-up

        email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
        password = "correct horse battery"
        status, user, _ = call(
            "POST", f"{url}/v1/registrations", {"email": email, "password": password}
        )
        assert status == 201, user
        assert user["roles"] == ["customer"]
        status, pair, _ = call(
            "POST",
            f"{url}/v1/tokens",
            form={"grant_type": "password", "username": email, "password": password},
        )
        assert status == 200, pair
        verified = run(
            identity,
            "uv",
            "run",
            "--no-sync",
            "python",
            "-c",
            VERIFY,
            url,
            pair["access_token"],
            "cart",
        )
        claims = json.loads(verified.stdout)
        assert (claims["sub"], claims["scope"], claims["iss"]) == (user["id"], "customer", url)
        status, me, _ = call("GET", f"{url}/v1/me", token=pair["access_token"])
        assert (status, me["email"]) == (200, email)

        # The admin of ADMIN_EMAIL reads users through the generated endpoint.
        status, admin, _ = call(
            "POST",
            f"{url}/v1/tokens",
            {"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1]},
        )
        assert (status, admin.get("scope")) == (200, "customer admin"), admin
        status, read, _ = call("GET", f"{url}/v1/users/{user['id']}", token=admin["access_token"])
        assert (status, read["email"]) == (200, email)

        # Refresh rotation, and the reuse of a rotated token revokes the family.
        refresh = {"grant_type": "refresh_token", "refresh_token": pair["refresh_token"]}
        status, rotated, _ = call("POST", f"{url}/v1/tokens", refresh)
        assert status == 200, rotated
        assert call("POST", f"{url}/v1/tokens", refresh)[0] == 401
        again = {"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
        assert call("POST", f"{url}/v1/tokens", again)[0] == 401

        # A service's token, by HTTP Basic as well.
        basic = base64.b64encode(b"order:order-secret").decode()
        status, service, _ = call(
            "POST",
            f"{url}/v1/tokens",
            form={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert status == 200, service
        assert service["scope"] == "inventory:reserve payment:charge"
        assert "refresh_token" not in service

        # A rotation by the command: two keys published, old and new tokens both accepted.
        new_kid = run(
            identity,
            *("uv", "run", "--no-sync", "python", "-m", "identity_service.custom_routes"),
            "rotate-keys",
            DATABASE_URL=served.env["DATABASE_URL"],
        ).stdout.strip()
        status, jwks, _ = call("GET", url + JWKS)
        assert jwks["keys"][0]["kid"] == new_kid
        assert len(jwks["keys"]) == 2
        time.sleep(1.1)  # identity reads its keys again at most once a second
        status, fresh, _ = call(
            "POST",
            f"{url}/v1/tokens",
            {"grant_type": "password", "username": email, "password": password},
        )
        assert status == 200, fresh
        assert call("GET", f"{url}/v1/me", token=fresh["access_token"])[0] == 200
        assert call("GET", f"{url}/v1/me", token=rotated["access_token"])[0] == 200

        # Login throttling: five failures, then 429 with Retry-After even for the password.
        wrong = {"grant_type": "password", "username": email, "password": "wrong password"}
        assert [call("POST", f"{url}/v1/tokens", wrong)[0] for _ in range(5)] == [401] * 5
        status, problem, headers = call(
            "POST",
            f"{url}/v1/tokens",
            {"grant_type": "password", "username": email, "password": password},
        )
        assert (status, problem["status"]) == (429, 429)
        assert int(headers["retry-after"]) > 0
    finally:
        served.stop()
