"""Identity's own API (custom_routes.py): registration, the three grants, refresh rotation and
family revocation, the JWKS and key rotation, login throttling, the admin user made at start-up,
and identity's tokens accepted by its own generated endpoints.

Yours: created once by microforge, never overwritten by `copier update`.
"""

import base64
import contextlib
import datetime
import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from identity_service.app import create_app
from identity_service.custom_routes import JWKS_PATH, main
from identity_service.database import Base
from identity_service.events.store import OutboxMessage
from identity_service.models import Credential, RefreshToken, SigningKey
from identity_service.security import DEV_ISSUER, Authenticator
from identity_service.settings import Settings

from ..support import assert_problem

PASSWORD = "correct horse battery"
AUDIENCE = ["identity", "catalog", "cart", "inventory", "order", "payment", "notification"]
ADMIN = "admin@shop.local"  # as the local runner names it (a special-use domain)
CLIENTS = {
    "order": {"secret": "order-secret", "scopes": ["inventory:reserve", "payment:charge"]},
}


async def _delete_all_rows(app: Any) -> None:
    async with app.state.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            await connection.execute(table.delete())


def changed(settings: Settings, **changes: Any) -> Settings:
    """The test settings with `changes`, validated like the environment's."""
    return Settings(**{**settings.model_dump(), **changes})


@contextlib.contextmanager
def open_client(settings: Settings, **changes: Any) -> Iterator[TestClient]:
    """A tokenless client of an app with `changes` to the test settings; every row it wrote
    (keys and users included) is deleted afterwards."""
    app = create_app(changed(settings, **changes))
    with TestClient(app) as client:
        try:
            yield client
        finally:
            assert client.portal is not None
            client.portal.call(_delete_all_rows, app)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with open_client(settings, service_clients=CLIENTS) as client:
        yield client


def rows(client: TestClient, model: Any) -> list[Any]:
    async def read() -> list[Any]:
        async with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
            return list((await session.scalars(sa.select(model))).all())

    assert client.portal is not None
    return client.portal.call(read)


def register(client: TestClient, email: str | None = None, **body: Any) -> dict[str, Any]:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    response = client.post(
        "/v1/registrations",
        json={"email": email, "password": PASSWORD, "display_name": "Ada", **body},
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


def login(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post(
        "/v1/tokens",
        json={"grant_type": "password", "username": email, "password": password, **extra},
    )


def tokens(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = login(client, email, password)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verify(client: TestClient, token: str, audience: str = "catalog") -> dict[str, Any]:
    """The claims of `token`, verified by pyjwt with the key the JWKS names by `kid`."""
    jwks = client.get(JWKS_PATH).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=DEV_ISSUER,
        options={"require": ["exp", "iat", "sub", "iss", "aud"]},
    )
    return claims


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Registration ------------------------------------------------------------------------------------


def test_registration_creates_a_customer_and_its_event(api: TestClient) -> None:
    user = register(api, "Ada.Lovelace@Example.com")
    assert user["email"] == "ada.lovelace@example.com"
    assert user["roles"] == ["customer"]
    assert user["display_name"] == "Ada"
    assert {"id", "created_at"} <= user.keys()
    assert not {"password", "password_hash"} & user.keys()
    credentials = rows(api, Credential)
    assert [str(c.user_id) for c in credentials] == [user["id"]]
    assert credentials[0].password_hash.startswith("$argon2id$")
    events = [m for m in rows(api, OutboxMessage) if str(m.aggregate_id) == user["id"]]
    assert [m.type for m in events] == ["UserCreated"]


def test_a_taken_email_is_409_whatever_its_case(api: TestClient) -> None:
    register(api, "grace@example.com")
    again = api.post("/v1/registrations", json={"email": "GRACE@example.com", "password": PASSWORD})
    assert_problem(again, 409)
    assert len(rows(api, Credential)) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": "x" * 129}, "password"),
        ({"email": "a@example.com", "password": "nul\x00byte-password"}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "roles": ["admin"]}, "roles"),
    ],
)
def test_bad_registrations_are_422(api: TestClient, body: dict[str, Any], field: str) -> None:
    assert_problem(api.post("/v1/registrations", json=body), 422, field)
    assert rows(api, Credential) == []


# Password grant --------------------------------------------------------------------------------


def test_password_login_issues_a_verifiable_rs256_token(api: TestClient) -> None:
    user = register(api)
    response = login(api, user["email"].upper())
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == "customer"
    assert body["refresh_token"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    assert header["kid"]
    claims = verify(api, body["access_token"])
    assert claims["sub"] == user["id"]
    assert claims["scope"] == "customer"
    assert claims["aud"][: len(AUDIENCE)] == AUDIENCE
    assert "gateway" in claims["aud"]
    assert claims["exp"] - claims["iat"] == 900


def test_password_login_accepts_a_form_body(api: TestClient) -> None:
    user = register(api)
    response = api.post(
        "/v1/tokens",
        data={"grant_type": "password", "username": user["email"], "password": PASSWORD},
    )
    assert response.status_code == 200, response.text
    assert verify(api, response.json()["access_token"])["sub"] == user["id"]


def test_wrong_credentials_are_401(api: TestClient) -> None:
    user = register(api)
    wrong = assert_problem(login(api, user["email"], "wrong password"), 401)
    assert wrong["error"] == "invalid_grant"
    unknown = assert_problem(login(api, "nobody@example.com"), 401)
    assert unknown["detail"] == wrong["detail"]  # nothing tells which part was wrong


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ({"grant_type": "password", "username": "a@example.com"}, None, 422),
        ({"grant_type": "magic"}, None, 422),
        ({"username": "a@example.com", "password": "x"}, None, 422),
        ({"grant_type": "refresh_token"}, None, 422),
        ({"grant_type": "client_credentials", "client_id": "order"}, None, 422),
        ({"grant_type": "password", "username": 5, "password": "x"}, None, 422),
        ("[1, 2]", "application/json", 422),
        ("{not json", "application/json", 422),
        ("grant_type=password&username=%ff", "application/x-www-form-urlencoded", 422),
        ("grant_type=password", "text/plain", 415),
    ],
)
def test_bad_token_requests_are_4xx_problems(
    api: TestClient, body: Any, content_type: str | None, status: int
) -> None:
    if content_type is None:
        response = api.post("/v1/tokens", json=body)
    else:
        response = api.post("/v1/tokens", content=body, headers={"content-type": content_type})
    assert_problem(response, status)


def test_an_inactive_user_cannot_log_in(api: TestClient, settings: Settings) -> None:
    user = register(api)
    with open_client(settings, admin_email="root@example.com", admin_password=PASSWORD) as admin:
        token = tokens(admin, "root@example.com")["access_token"]
        changed = admin.patch(
            f"/v1/users/{user['id']}", json={"active": False}, headers=bearer(token)
        )
        assert changed.status_code == 200, changed.text
        assert_problem(login(admin, user["email"]), 401)


def test_a_scope_narrows_the_token_and_more_is_refused(api: TestClient, settings: Settings) -> None:
    with open_client(settings, admin_email="root@example.com", admin_password=PASSWORD) as admin:
        narrowed = login(admin, "root@example.com", scope="customer")
        assert narrowed.status_code == 200, narrowed.text
        assert narrowed.json()["scope"] == "customer"
        assert_problem(login(admin, "root@example.com", scope="admin payment:charge"), 400)


# Refresh tokens ---------------------------------------------------------------------------------


def refresh(client: TestClient, token: str) -> Any:
    return client.post("/v1/tokens", json={"grant_type": "refresh_token", "refresh_token": token})


def test_refresh_rotates_and_reuse_revokes_the_family(api: TestClient) -> None:
    user = register(api)
    first = tokens(api, user["email"])
    second = refresh(api, first["refresh_token"])
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"]
    assert verify(api, pair["access_token"])["sub"] == user["id"]
    third = refresh(api, pair["refresh_token"])
    assert third.status_code == 200, third.text
    latest = third.json()["refresh_token"]
    # The first token was rotated: its reuse (a thief's replay) revokes the whole family.
    reused = assert_problem(refresh(api, first["refresh_token"]), 401)
    assert reused["error"] == "invalid_grant"
    assert_problem(refresh(api, latest), 401)
    statuses = sorted(row.status for row in rows(api, RefreshToken))
    assert statuses == ["REVOKED", "ROTATED", "ROTATED"]
    # Another login is another family, untouched by the revocation.
    other = tokens(api, user["email"])
    assert refresh(api, other["refresh_token"]).status_code == 200


def test_unknown_and_expired_refresh_tokens_are_401(api: TestClient, settings: Settings) -> None:
    assert_problem(refresh(api, "no-such-token"), 401)
    user = register(api)
    with open_client(settings, refresh_token_ttl_seconds=60) as client:
        token = tokens(client, user["email"])["refresh_token"]

        async def expire() -> None:
            async with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
                past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
                await session.execute(sa.update(RefreshToken).values(expires_at=past))
                await session.commit()

        assert client.portal is not None
        client.portal.call(expire)
        assert_problem(refresh(client, token), 401)


# Client credentials -----------------------------------------------------------------------------


def test_client_credentials_issue_a_service_token(api: TestClient) -> None:
    response = api.post(
        "/v1/tokens",
        json={
            "grant_type": "client_credentials",
            "client_id": "order",
            "client_secret": "order-secret",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "refresh_token" not in body
    assert body["expires_in"] == 3600
    assert body["scope"] == "inventory:reserve payment:charge"
    claims = verify(api, body["access_token"], audience="inventory")
    assert claims["sub"] == "order"
    assert claims["scope"] == "inventory:reserve payment:charge"
    assert claims["exp"] - claims["iat"] == 3600


def test_client_credentials_by_basic_auth_form_and_scope(api: TestClient) -> None:
    basic = base64.b64encode(b"order:order-secret").decode()
    response = api.post(
        "/v1/tokens",
        data={"grant_type": "client_credentials", "scope": "payment:charge"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "payment:charge"


def test_wrong_client_secrets_are_401(api: TestClient) -> None:
    for client_id, secret in [("order", "nope"), ("stranger", "order-secret")]:
        response = api.post(
            "/v1/tokens",
            json={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
        assert assert_problem(response, 401)["error"] == "invalid_client"


def test_service_clients_setting_is_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_CLIENTS", json.dumps(CLIENTS))
    client = Settings(_env_file=None).service_clients["order"]
    assert client.scopes == ("inventory:reserve", "payment:charge")
    assert client.secret.get_secret_value() == "order-secret"
    assert "order-secret" not in repr(Settings(_env_file=None))


# Keys -------------------------------------------------------------------------------------------


def test_jwks_publishes_two_keys_during_a_rollover(api: TestClient, settings: Settings) -> None:
    user = register(api)
    old_token = tokens(api, user["email"])["access_token"]
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    with open_client(settings, admin_email="root@example.com", admin_password=PASSWORD) as admin:
        admin_token = tokens(admin, "root@example.com")["access_token"]
        rotated = admin.post("/v1/key-rotations", headers=bearer(admin_token))
        assert rotated.status_code == 201, rotated.text
        new_kid = rotated.json()["kid"]
        assert rotated.json()["published"] == [new_kid, old_kid]
        jwks = admin.get(JWKS_PATH)
        assert jwks.headers["cache-control"].startswith("public")
        assert [key["kid"] for key in jwks.json()["keys"]] == [new_kid, old_kid]
        assert all("d" not in key and "p" not in key for key in jwks.json()["keys"])
        assert verify(admin, old_token)["sub"] == user["id"]  # still verifies
        new_token = tokens(admin, user["email"])["access_token"]
        assert jwt.get_unverified_header(new_token)["kid"] == new_kid
        assert verify(admin, new_token)["sub"] == user["id"]
        # Tokens of the new key pass identity's own checks at once (after the old admin token).
        me = admin.get("/v1/me", headers=bearer(new_token))
        assert me.status_code == 200, me.text
        assert me.json()["id"] == user["id"]
        demoted = [row for row in rows(admin, SigningKey) if row.kid == old_kid]
        assert demoted[0].private_key == ""  # a key that no longer signs keeps no secret
        # A second rotation keeps the first key while tokens it signed may still be alive...
        again = admin.post("/v1/key-rotations", headers=bearer(admin_token))
        assert again.status_code == 201, again.text
        newest = again.json()["kid"]
        assert again.json()["published"] == [newest, new_kid, old_kid]

        async def age(kid: str) -> None:
            longest = datetime.timedelta(seconds=3600 + settings.auth_leeway_seconds + 1)
            async with admin.app.state.session_factory() as session:  # type: ignore[attr-defined]
                await session.execute(
                    sa.update(SigningKey)
                    .where(SigningKey.kid == kid)
                    .values(updated_at=datetime.datetime.now(datetime.UTC) - longest)
                )
                await session.commit()

        # ...and a later one deletes it once they have all expired.
        assert admin.portal is not None
        admin.portal.call(age, old_kid)
        third = admin.post("/v1/key-rotations", headers=bearer(admin_token))
        assert third.status_code == 201, third.text
        assert third.json()["published"] == [third.json()["kid"], newest, new_kid]
        assert old_kid not in [key["kid"] for key in admin.get(JWKS_PATH).json()["keys"]]


def test_rotate_keys_command(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    from identity_service.settings import get_settings

    get_settings.cache_clear()
    try:
        assert main(["rotate-keys"]) == 0
        assert main(["bogus"]) == 2
    finally:
        get_settings.cache_clear()
    with open_client(settings) as client:
        assert len(client.get(JWKS_PATH).json()["keys"]) == 1


# Identity's tokens on identity's own endpoints ---------------------------------------------------


def test_identity_accepts_its_tokens_on_its_generated_endpoints(settings: Settings) -> None:
    with open_client(settings, admin_email=ADMIN, admin_password=PASSWORD) as client:
        admin = tokens(client, ADMIN)
        assert admin["scope"] == "customer admin"
        user = register(client)
        read = client.get(f"/v1/users/{user['id']}", headers=bearer(admin["access_token"]))
        assert read.status_code == 200, read.text
        customer = tokens(client, user["email"])["access_token"]
        assert_problem(client.get(f"/v1/users/{user['id']}", headers=bearer(customer)), 403)
        me = client.get("/v1/me", headers=bearer(customer))
        assert me.status_code == 200, me.text
        assert me.json()["email"] == user["email"]
        assert_problem(client.get("/v1/me"), 401)


@pytest.mark.parametrize(
    ("issuer", "jwks_url"),
    [
        ("http://127.0.0.1:9", "http://127.0.0.1:9" + JWKS_PATH),  # nothing listens there
        ("http://127.0.0.1:9/", "http://127.0.0.1:9" + JWKS_PATH + "/"),
    ],
)
def test_own_jwks_url_is_read_from_the_database(
    settings: Settings, issuer: str, jwks_url: str
) -> None:
    """With AUTH_JWKS_URL naming identity's own JWKS (as in production), identity does not
    fetch it over HTTP from itself (not listening yet at start-up): it reads its database."""
    with open_client(
        settings,
        auth_issuer=issuer,
        auth_jwks_url=jwks_url,
        admin_email="root@example.com",
        admin_password=PASSWORD,
    ) as client:
        token = tokens(client, "root@example.com")["access_token"]
        assert jwt.decode(token, options={"verify_signature": False})["iss"] == issuer
        listed = client.get("/v1/users", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert [u["email"] for u in listed.json()["items"]] == ["root@example.com"]


def test_the_generated_verifier_of_another_service_accepts_them(
    api: TestClient, settings: Settings, tmp_path: Path
) -> None:
    """What every other service does: its generated security module with AUTH_JWKS_URL on
    identity's JWKS (here a file:// copy of it) and its own name as the audience."""
    user = register(api)
    token = tokens(api, user["email"])["access_token"]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(api.get(JWKS_PATH).text)
    other = changed(
        settings, auth_jwks_url=jwks.as_uri(), auth_issuer=DEV_ISSUER, auth_audience="cart"
    )
    verifier = Authenticator(other)
    assert api.portal is not None
    api.portal.call(verifier.start)
    principal = api.portal.call(verifier.authenticate, token)
    assert principal.subject == user["id"]
    assert principal.scopes == {"customer"}
    forged = jwt.encode(
        {"sub": user["id"], "aud": "cart", "exp": int(time.time()) + 60, "scope": "admin"},
        "a-secret-long-enough-for-hmac-sha256!",
        algorithm="HS256",
        headers={"kid": jwt.get_unverified_header(token)["kid"]},
    )
    with pytest.raises(Exception, match="not accepted"):
        api.portal.call(verifier.authenticate, forged)


# Throttling -------------------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_account(api: TestClient) -> None:
    user = register(api)
    for _ in range(5):
        assert login(api, user["email"], "wrong password").status_code == 401
    throttled = assert_problem(login(api, user["email"]), 429)  # even the right password
    assert throttled["error"] == "slow_down"
    retry_after = int(
        api.post(
            "/v1/tokens",
            json={"grant_type": "password", "username": user["email"], "password": PASSWORD},
        ).headers["retry-after"]
    )
    assert 0 < retry_after <= 900
    other = register(api)
    assert login(api, other["email"]).status_code == 200  # other accounts are not affected


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_failed_logins_are_throttled_in_redis_when_set(settings: Settings) -> None:
    """With REDIS_URL the counts live in Redis: replicas share them (as the rate limit)."""
    if not redis_answers():
        pytest.skip("Redis does not answer on 127.0.0.1:6379")
    changes = {"redis_url": "redis://127.0.0.1:6379/15", "login_max_failures_per_account": 2}
    with open_client(settings, **changes) as client:
        user = register(client)
        for _ in range(2):
            assert login(client, user["email"], "wrong password").status_code == 401
    with open_client(settings, **changes) as replica:  # another process, the same counts
        assert_problem(login(replica, user["email"]), 429)


def test_failed_logins_are_throttled_per_address(settings: Settings) -> None:
    with open_client(settings, login_max_failures_per_address=3) as client:
        users = [register(client) for _ in range(4)]
        for user in users[:3]:
            assert login(client, user["email"], "wrong password").status_code == 401
        response = login(client, users[3]["email"])
        assert_problem(response, 429)
        assert int(response.headers["retry-after"]) > 0


def test_a_success_clears_the_account_failures(settings: Settings) -> None:
    with open_client(settings, login_max_failures_per_account=2) as client:
        user = register(client)
        assert login(client, user["email"], "wrong password").status_code == 401
        assert login(client, user["email"]).status_code == 200
        assert login(client, user["email"], "wrong password").status_code == 401
        assert login(client, user["email"]).status_code == 200


# Admin user and secrets -------------------------------------------------------------------------


def test_the_admin_user_is_created_once(settings: Settings) -> None:
    admin = {"admin_email": "root@example.com", "admin_password": PASSWORD}
    with TestClient(create_app(changed(settings, **admin))) as first:
        assert tokens(first, "root@example.com")["scope"] == "customer admin"
    # A restart with another ADMIN_PASSWORD changes nothing: same user, same password.
    with open_client(settings, **{**admin, "admin_password": "other password"}) as second:
        assert len(rows(second, Credential)) == 1
        assert tokens(second, "root@example.com")["scope"] == "customer admin"
        assert_problem(login(second, "root@example.com", "other password"), 401)


def test_admin_email_without_password_refuses_to_start(settings: Settings) -> None:
    app = create_app(changed(settings, admin_email="root@example.com"))
    with pytest.raises(Exception, match="ADMIN_PASSWORD"), TestClient(app):
        pass


def test_no_response_ever_carries_a_password_hash(settings: Settings) -> None:
    with open_client(settings, admin_email="root@example.com", admin_password=PASSWORD) as client:
        user = register(client)
        admin = tokens(client, "root@example.com")["access_token"]
        admin_id = jwt.decode(admin, options={"verify_signature": False})["sub"]
        customer = tokens(client, user["email"])["access_token"]
        responses = [
            client.get("/v1/users", headers=bearer(admin)),
            client.get(f"/v1/users/{user['id']}", headers=bearer(admin)),
            client.patch(
                f"/v1/users/{user['id']}", json={"display_name": "B"}, headers=bearer(admin)
            ),
            client.get("/v1/me", headers=bearer(customer)),
            client.get(JWKS_PATH),
            client.get("/openapi.json"),
            client.get("/v1/credentials", headers=bearer(admin)),
        ]
        hashes = [row.password_hash for row in rows(client, Credential)]
        assert len(hashes) == 2
        for response in responses:
            assert "$argon2" not in response.text, response.request.url
            assert "password_hash" not in response.text, response.request.url
            assert "private_key" not in response.text, response.request.url
        assert jwt.decode(admin, options={"verify_signature": False})["sub"] == admin_id


def test_users_are_deactivated_not_deleted(settings: Settings) -> None:
    with open_client(settings, admin_email="root@example.com", admin_password=PASSWORD) as client:
        user = register(client)
        admin = tokens(client, "root@example.com")["access_token"]
        refresh_token = tokens(client, user["email"])["refresh_token"]
        assert client.delete(f"/v1/users/{user['id']}", headers=bearer(admin)).status_code == 405
        deactivated = client.patch(
            f"/v1/users/{user['id']}", json={"active": False}, headers=bearer(admin)
        )
        assert deactivated.status_code == 200, deactivated.text
        assert_problem(login(client, user["email"]), 401)
        assert_problem(refresh(client, refresh_token), 401)
        assert {r.status for r in rows(client, RefreshToken)} == {"REVOKED", "ACTIVE"}
