"""Identity's own HTTP API: registration, tokens, the JWKS, and the work done at start-up.

Yours: created once by microforge, never overwritten by `copier update`.

- `POST /v1/registrations` (public): {email, password, display_name} -> 201 the user (never a
  hash); an email already registered (case-insensitive) -> 409.
- `POST /v1/tokens` (public; a JSON or `application/x-www-form-urlencoded` body) by
  `grant_type`:
  - `password` {username: the email, password} -> {access_token, token_type: Bearer,
    expires_in, refresh_token, scope}; wrong credentials or an inactive user -> 401;
  - `refresh_token` {refresh_token} -> a new pair: the token used is rotated, and a rotated (or
    revoked) token used again revokes its whole family (401);
  - `client_credentials` {client_id, client_secret} (or HTTP Basic) -> {access_token,
    token_type, expires_in, scope}, no refresh token; clients come from `SERVICE_CLIENTS`.
  An optional `scope` narrows the token to those scopes (asking for more: 400 invalid_scope).
  Errors are problem+json carrying the OAuth2 `error` code as an extension member.
- Access tokens: RS256 JWTs with `kid`; iss = AUTH_ISSUER (unset: the development issuer of
  security.py), sub = the user id (the client id for services), aud = TOKEN_AUDIENCE as a list,
  scope = the roles' scopes (ROLE_SCOPES), exp = ACCESS_TOKEN_TTL_SECONDS
  (SERVICE_TOKEN_TTL_SECONDS for clients), plus iat, nbf and jti.
- `GET /.well-known/jwks.json` (public): the ACTIVE signing key and, after a rotation, the
  PREVIOUS one. Keys live in the `signing_keys` table (shared by replicas); the first is made at
  start-up (outside tests) or on first need. `rotate_signing_keys` makes a new ACTIVE key and
  turns the active one PREVIOUS (published until the tokens it signed have expired, then
  deleted by a later rotation): `POST /v1/key-rotations` (scope admin) or
  `python -m identity_service.custom_routes rotate-keys`.
- `GET /v1/me` (scope customer): the caller's own user. The generated `/v1/users` API is for
  admins (scope admin); users are not deleted but deactivated (`PATCH {"active": false}`):
  their logins and refresh tokens are refused from then on (a refresh revokes the family).
- Login throttling: failed password and client-credentials logins are counted per account and
  per client address (moving windows of the `limits` library: in memory, or in Redis when
  REDIS_URL is set, like the generated rate limit); past LOGIN_MAX_FAILURES_PER_ACCOUNT or
  LOGIN_MAX_FAILURES_PER_ADDRESS within LOGIN_THROTTLE_WINDOW_SECONDS every attempt answers 429
  with Retry-After, before any password is checked. A successful login clears its account.
- Start-up (the router's lifespan, which FastAPI runs inside the app's own): the admin user of
  ADMIN_EMAIL / ADMIN_PASSWORD is created when missing, and identity verifies its own tokens
  from its database (`IdentityAuthenticator`) when AUTH_JWKS_URL is unset or names its own JWKS
  (AUTH_ISSUER + /.well-known/jwks.json), instead of fetching its own JWKS over HTTP.
"""

import asyncio
import base64
import binascii
import contextlib
import datetime
import hashlib
import json
import logging
import math
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from enum import Enum
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import jwt
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from pwdlib import PasswordHash
from pwdlib.exceptions import PwdlibError
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from .database import get_session, utcnow
from .hooks.user import PASSWORD_HASH
from .models import Credential, RefreshToken, RefreshTokenStatus, SigningKey, SigningKeyStatus
from .models.user import User
from .problems import (
    Conflict,
    NotFound,
    Problem,
    database_unavailable,
    field_errors,
    problem_responses,
)
from .repositories.user import UserRepository, get_user_repository
from .schemas.user import UserRead
from .security import DEV_ISSUER, Authenticator, ConfigurationError, dev_jwks, requires
from .settings import Settings
from .types import Text

logger = logging.getLogger(__name__)

JWKS_PATH = "/.well-known/jwks.json"
ALGORITHM = "RS256"
TAGS: list[str | Enum] = ["Identity"]


# Problems ---------------------------------------------------------------------------------------


class BadRequest(Problem):
    status = 400
    title = "Bad Request"


class InvalidCredentials(Problem):
    status = 401
    title = "Unauthorized"


class UnsupportedMediaType(Problem):
    status = 415
    title = "Unsupported Media Type"


class BodyInvalid(Problem):
    status = 422
    title = "Unprocessable Content"


class TooManyAttempts(Problem):
    status = 429
    title = "Too Many Requests"


def _missing(field: str) -> BodyInvalid:
    return BodyInvalid(
        "The request breaks the API's constraints.",
        errors=[
            {"field": field, "location": "body", "message": "Field required", "type": "missing"}
        ],
        error="invalid_request",
    )


# Bodies -----------------------------------------------------------------------------------------


class RegistrationRequest(BaseModel):
    """Body of `POST /v1/registrations`."""

    model_config = ConfigDict(
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "password": "correct horse", "display_name": "Ada"}
            ]
        },
    )

    email: EmailStr
    """The user's email: the login name, unique (case-insensitive)."""
    password: Annotated[Text, Field(min_length=8, max_length=128)]
    """The password (8 to 128 characters); only its argon2 hash is stored."""
    display_name: Annotated[Text, Field(max_length=120)] | None = None
    """The name shown to people."""


class TokenRequest(BaseModel):
    """Body of `POST /v1/tokens` (JSON or form-encoded): the fields `grant_type` needs."""

    model_config = ConfigDict(
        extra="ignore",
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {"grant_type": "password", "username": "ada@example.com", "password": "secret12"}
            ]
        },
    )

    grant_type: Literal["password", "refresh_token", "client_credentials"]
    """password, refresh_token or client_credentials."""
    username: Annotated[Text, Field(max_length=320)] = ""
    """The user's email (grant password)."""
    password: Annotated[Text, Field(max_length=128)] = ""
    """The user's password (grant password)."""
    refresh_token: Annotated[Text, Field(max_length=256)] = ""
    """A refresh token (grant refresh_token)."""
    client_id: Annotated[Text, Field(max_length=200)] = ""
    """The service's client id (grant client_credentials; or HTTP Basic)."""
    client_secret: Annotated[Text, Field(max_length=512)] = ""
    """The service's client secret (grant client_credentials; or HTTP Basic)."""
    scope: Annotated[Text, Field(max_length=2000)] = ""
    """Space-separated scopes to narrow the token to (default: all granted)."""


class TokenResponse(BaseModel):
    """An issued token (RFC 6749 section 5.1)."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    access_token: str
    """The RS256 JWT to send as `Authorization: Bearer <token>`."""
    token_type: Literal["Bearer"] = "Bearer"
    """Always Bearer."""
    expires_in: int
    """Seconds the access token stays valid."""
    refresh_token: str | None = None
    """Single-use token for the refresh_token grant (user logins only)."""
    scope: str
    """Space-separated scopes the access token carries."""


class JsonWebKey(BaseModel):
    """A public RSA signing key (RFC 7517)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="allow")

    kty: str
    """Key type: RSA."""
    kid: str
    """Key id: the `kid` header of the tokens it signed (its RFC 7638 thumbprint)."""
    alg: str
    """Signature algorithm: RS256."""
    use: str
    """Public key use: sig."""
    n: str
    """RSA modulus, base64url."""
    e: str
    """RSA public exponent, base64url."""


class JsonWebKeySet(BaseModel):
    """The public keys that verify identity's tokens."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    keys: list[JsonWebKey]
    """The active key first, then the previous one during a rollover."""


class KeyRotation(BaseModel):
    """Result of a signing key rotation."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    kid: str
    """Id of the new active key."""
    published: list[str]
    """Ids of every key now in the JWKS."""


# Passwords --------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> tuple[PasswordHash, str]:
    hasher = PasswordHash(
        (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
    )
    return hasher, hasher.hash(secrets.token_urlsafe(16))  # verified when no user matches


def password_hasher(settings: Settings) -> tuple[PasswordHash, str]:
    """The argon2id hasher of the settings and a hash of nothing, for constant-time misses."""
    return _hasher(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


async def hash_password(settings: Settings, password: str) -> str:
    hasher, _ = password_hasher(settings)
    return await asyncio.to_thread(hasher.hash, password)


async def check_password(
    settings: Settings, password: str, stored: str | None
) -> tuple[bool, str | None]:
    """(matches, a new hash when the parameters changed); with no stored hash the same work is
    done against a dummy hash, so an unknown email takes as long as a wrong password."""
    hasher, dummy = password_hasher(settings)
    if stored is None:
        await asyncio.to_thread(hasher.verify, password, dummy)
        return False, None
    try:
        return await asyncio.to_thread(hasher.verify_and_update, password, stored)
    except PwdlibError:  # not a hash this hasher knows
        return False, None


# Signing keys -----------------------------------------------------------------------------------


def _b64url_uint(value: int) -> str:
    data = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _new_key(bits: int) -> tuple[str, str, dict[str, str]]:
    """(kid, private PEM, public JWK) of a new RSA key; the kid is its RFC 7638 thumbprint."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = private.public_key().public_numbers()
    jwk = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return kid, pem, {**jwk, "kid": kid, "alg": ALGORITHM, "use": "sig"}


@lru_cache(maxsize=8)
def _private_key(pem: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("a signing key of the database is not an RSA key")
    return key


def retention_seconds(settings: Settings) -> float:
    """How long a demoted key stays published: until the last token it signed has expired."""
    longest = max(settings.access_token_ttl_seconds, settings.service_token_ttl_seconds)
    return longest + settings.auth_leeway_seconds


async def rotate_signing_keys(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> SigningKey:
    """A new ACTIVE key. The active one becomes PREVIOUS: no longer signing (its private key
    is wiped) but still published, so the tokens it signed verify until they expire; PREVIOUS
    keys demoted longer ago than the longest token lifetime are deleted. Rotating once per
    token lifetime or less often, the JWKS holds two keys during a rollover."""
    kid, pem, jwk = await asyncio.to_thread(_new_key, settings.signing_key_bits)
    now = utcnow()
    expired = now - datetime.timedelta(seconds=retention_seconds(settings))
    async with factory() as session, session.begin():
        await session.execute(
            sa.delete(SigningKey).where(
                SigningKey.status == SigningKeyStatus.PREVIOUS, SigningKey.updated_at < expired
            )
        )
        await session.execute(
            sa.update(SigningKey)
            .where(SigningKey.status == SigningKeyStatus.ACTIVE)
            .values(
                status=SigningKeyStatus.PREVIOUS,
                private_key="",
                updated_at=now,
                version=SigningKey.version + 1,
            )
        )
        key = SigningKey(kid=kid, private_key=pem, public_jwk=jwk, status=SigningKeyStatus.ACTIVE)
        session.add(key)
    logger.info("signing key %s is now active", kid)
    return key


async def _active_key(session: AsyncSession) -> SigningKey | None:
    statement = (
        sa.select(SigningKey)
        .where(SigningKey.status == SigningKeyStatus.ACTIVE)
        .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
        .limit(1)
    )
    key: SigningKey | None = await session.scalar(statement)
    return key


async def signing_key(app: FastAPI) -> SigningKey:
    """The key tokens are signed with; the first one is made on first need."""
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session:
        key = await _active_key(session)
    if key is None:
        key = await rotate_signing_keys(factory, app.state.settings)
        await _reload_own_keys(app)
    return key


async def published_keys(factory: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    """The public JWKs of the JWKS document: ACTIVE first, then PREVIOUS, newest first."""
    async with factory() as session:
        rows = await session.scalars(
            sa.select(SigningKey).order_by(
                SigningKey.status, SigningKey.created_at.desc(), SigningKey.id.desc()
            )
        )
        return [dict(row.public_jwk) for row in rows if isinstance(row.public_jwk, dict)]


class IdentityAuthenticator(Authenticator):
    """The generated verifier, with identity's own published keys read from its database (and,
    outside production, the development key of `dev-token`) instead of a JWKS fetched over
    HTTP: identity would otherwise ask itself for its keys before it listens."""

    def __init__(self, settings: Settings, factory: async_sessionmaker[AsyncSession]) -> None:
        super().__init__(settings)
        self.factory = factory
        self.refresh_interval = min(self.refresh_interval, 1.0)  # a database read is cheap
        self.own_keys: list[dict[str, Any]] = []

    async def _read_document(self) -> Any:
        try:
            self.own_keys = await published_keys(self.factory)
        except (SQLAlchemyError, OSError) as error:  # unreachable: the keys last read
            logger.warning("signing keys not read from the database: %s", error)
        keys = list(self.own_keys)
        if not self.production:
            keys += (await asyncio.to_thread(dev_jwks, self.settings))["keys"]
        return {"keys": keys}

    async def reload(self) -> None:
        """Read the keys again (after this process rotated them)."""
        await self._fetch()


def _verifies_own_keys(settings: Settings) -> bool:
    """Whether AUTH_JWKS_URL is unset or names identity's own JWKS (AUTH_ISSUER +
    /.well-known/jwks.json, as the local runner and production set it)."""
    url = settings.auth_jwks_url
    if url is None:
        return True
    issuer = settings.auth_issuer
    return bool(issuer) and url.rstrip("/") == f"{str(issuer).rstrip('/')}{JWKS_PATH}"


async def _reload_own_keys(app: FastAPI) -> None:
    authenticator = getattr(app.state, "authenticator", None)
    if isinstance(authenticator, IdentityAuthenticator):
        await authenticator.reload()


# Tokens -----------------------------------------------------------------------------------------


def issuer(settings: Settings) -> str:
    """The `iss` of identity's tokens: AUTH_ISSUER, or the development issuer when unset (the
    one the generated verifier expects without AUTH_ISSUER)."""
    return settings.auth_issuer or DEV_ISSUER


def scopes_of_roles(settings: Settings, roles: object) -> list[str]:
    """The union of the scopes of `roles` (a list of role names), in a stable order."""
    granted: dict[str, None] = {}
    if isinstance(roles, list):
        for role in roles:
            if isinstance(role, str):
                granted.update(dict.fromkeys(settings.role_scopes.get(role, ())))
    return list(granted)


def narrow(granted: Sequence[str], requested: str) -> list[str]:
    """`granted`, or the requested subset of it (400 invalid_scope when it asks for more)."""
    wanted = list(dict.fromkeys(requested.split()))
    if not wanted:
        return list(granted)
    extra = [scope for scope in wanted if scope not in granted]
    if extra:
        raise BadRequest(
            f"The scopes {' '.join(extra)!r} are not granted to this account.",
            error="invalid_scope",
        )
    return wanted


def access_token(
    settings: Settings,
    key: SigningKey,
    subject: str,
    scopes: Iterable[str],
    ttl: int,
    claims: Mapping[str, Any] | None = None,
) -> str:
    """A signed access token (RS256, `kid` header) for `subject`."""
    now = int(time.time())
    payload = {
        "iss": issuer(settings),
        "sub": subject,
        "aud": settings.audience,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
        **(claims or {}),
    }
    return jwt.encode(
        payload,
        _private_key(key.private_key),
        algorithm=ALGORITHM,
        headers={"kid": key.kid, "typ": "at+jwt"},
    )


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_refresh_token(
    settings: Settings, user_id: uuid.UUID, family_id: uuid.UUID
) -> tuple[str, RefreshToken]:
    token = secrets.token_urlsafe(32)
    expires = utcnow() + datetime.timedelta(seconds=settings.refresh_token_ttl_seconds)
    row = RefreshToken(
        user_id=user_id,
        family_id=family_id,
        token_hash=_digest(token),
        status=RefreshTokenStatus.ACTIVE,
        expires_at=expires,
    )
    return token, row


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> None:
    """Every still-active token of the family is revoked (committed by the caller)."""
    await session.execute(
        sa.update(RefreshToken)
        .where(
            RefreshToken.family_id == family_id,
            RefreshToken.status == RefreshTokenStatus.ACTIVE,
        )
        .values(status=RefreshTokenStatus.REVOKED, version=RefreshToken.version + 1)
    )


# Login throttling -------------------------------------------------------------------------------


class LoginThrottle:
    """Failed logins per account and per client address, in moving windows (memory, or Redis
    with REDIS_URL). Storage failures let logins through (logged), like the generated limit."""

    def __init__(self, settings: Settings) -> None:
        window = settings.login_throttle_window_seconds
        self.account = RateLimitItemPerSecond(settings.login_max_failures_per_account, window)
        self.address = RateLimitItemPerSecond(settings.login_max_failures_per_address, window)
        self.storage: Storage
        if settings.redis_url:
            self.storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                socket_connect_timeout=0.5,
                socket_timeout=0.5,
            )
        else:
            self.storage = MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)

    def _keys(self, account: str, address: str) -> list[tuple[RateLimitItem, str]]:
        return [(self.account, "account:" + account), (self.address, "address:" + address)]

    async def retry_after(self, account: str, address: str) -> int | None:
        """Seconds to wait when the account or the address is throttled, else None."""
        try:
            for item, key in self._keys(account, address):
                if not await self.strategy.test(item, "identity-login", key):
                    stats = await self.strategy.get_window_stats(item, "identity-login", key)
                    return max(1, math.ceil(stats.reset_time - time.time()))
        except Exception as error:  # storage down: fail open
            logger.warning("login throttle storage failed: %s", error)
        return None

    async def failed(self, account: str, address: str) -> None:
        try:
            for item, key in self._keys(account, address):
                await self.strategy.hit(item, "identity-login", key)
        except Exception as error:
            logger.warning("login throttle storage failed: %s", error)

    async def succeeded(self, account: str) -> None:
        try:
            await self.strategy.clear(self.account, "identity-login", "account:" + account)
        except Exception as error:
            logger.warning("login throttle storage failed: %s", error)

    async def close(self) -> None:
        if isinstance(self.storage, MemoryStorage):
            await self.storage.reset()
            return
        client: Any = getattr(getattr(self.storage, "bridge", None), "storage", None)
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle(request.app.state.settings)
    return throttle


def _client_address(request: Request) -> str:
    """The caller's address as the generated rate limit sees it (TRUSTED_PROXIES apply)."""
    forwarded = request.headers.get("x-forwarded-for")
    limiter = request.app.state.rate_limiter
    address: str = limiter.client_address(
        request.scope, forwarded.encode("latin-1") if forwarded is not None else None
    )
    return address


async def _guarded(request: Request, account: str) -> tuple[LoginThrottle, str]:
    throttle, address = _throttle(request), _client_address(request)
    wait = await throttle.retry_after(account, address)
    if wait is not None:
        raise TooManyAttempts(
            f"Too many failed logins: try again in {wait} s.",
            headers={"Retry-After": str(wait)},
            error="slow_down",
        )
    return throttle, address


# Users ------------------------------------------------------------------------------------------


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    statement = sa.select(User).where(sa.func.lower(User.email) == email.strip().lower())
    user: User | None = await session.scalar(statement.limit(1))
    return user


async def _credential(session: AsyncSession, user_id: uuid.UUID) -> Credential | None:
    row: Credential | None = await session.scalar(
        sa.select(Credential).where(Credential.user_id == user_id)
    )
    return row


async def create_user(
    repo: UserRepository, email: str, password: str, display_name: str | None, roles: list[str]
) -> User:
    """A user and its credential, in one transaction through the repository (hooks, the
    UserCreated event); 409 when the email is taken."""
    if await user_by_email(repo.session, email) is not None:
        raise Conflict("A user with this email already exists.")
    password_hash = await hash_password(repo.context.settings, password)
    token = PASSWORD_HASH.set(password_hash)
    try:
        values = {
            "email": email.strip().lower(),
            "display_name": display_name,
            "roles": roles,
            "active": True,
        }
        return await repo.create(values)
    finally:
        PASSWORD_HASH.reset(token)


async def bootstrap_admin(app: FastAPI) -> None:
    """Create the ADMIN_EMAIL user (roles customer and admin) when missing; an existing one
    keeps its password and gets the admin role (and a credential) if it lacks them."""
    settings: Settings = app.state.settings
    if settings.admin_email is None:
        return
    password = settings.admin_password.get_secret_value() if settings.admin_password else ""
    if not password:
        raise ConfigurationError("ADMIN_EMAIL is set without ADMIN_PASSWORD")
    if settings.app_env == "production" and len(password) < 12:
        raise ConfigurationError("ADMIN_PASSWORD needs at least 12 characters in production")
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    async with factory() as session:
        repo = UserRepository(session, settings=settings)
        user = await user_by_email(session, settings.admin_email)
        if user is None:
            try:
                await create_user(
                    repo, settings.admin_email, password, "Administrator", ["customer", "admin"]
                )
            except Conflict:  # another replica created it meanwhile
                return
            logger.info("admin user %s created", settings.admin_email)
            return
        roles = user.roles if isinstance(user.roles, list) else []
        if "admin" not in roles:
            user.roles = [*roles, *(r for r in ("customer", "admin") if r not in roles)]
        if await _credential(session, user.id) is None:
            password_hash = await hash_password(settings, password)
            session.add(Credential(user_id=user.id, password_hash=password_hash))
        await session.commit()


# Grants -----------------------------------------------------------------------------------------


async def _read_token_request(request: Request) -> TokenRequest:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    data: Any
    if media_type == "application/x-www-form-urlencoded":
        try:
            data = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=32))
        except (UnicodeDecodeError, ValueError):
            raise BodyInvalid(
                "The form body is not UTF-8 form-encoded fields.", error="invalid_request"
            ) from None
    elif media_type in {"application/json", ""} or media_type.endswith("+json"):
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise BodyInvalid("The body is not valid JSON.", error="invalid_request") from None
    else:
        raise UnsupportedMediaType(
            "Send application/json or application/x-www-form-urlencoded.",
            error="invalid_request",
        )
    if not isinstance(data, dict):
        raise BodyInvalid("The body must be a JSON object.", error="invalid_request")
    try:
        return TokenRequest.model_validate(data)
    except ValidationError as error:
        located = [{**item, "loc": ("body", *item["loc"])} for item in error.errors()]
        raise BodyInvalid(
            "The request breaks the API's constraints.",
            errors=field_errors(located),
            error="unsupported_grant_type"
            if any(item["loc"] == ("grant_type",) for item in error.errors())
            else "invalid_request",
        ) from None


async def _user_tokens(
    request: Request,
    session: AsyncSession,
    key: SigningKey,
    user: User,
    family_id: uuid.UUID,
    scopes: list[str],
) -> TokenResponse:
    """An access token and a refresh token of `family_id`, committed with the session's
    changes (a rotated token, an updated hash)."""
    settings: Settings = request.app.state.settings
    token = access_token(settings, key, str(user.id), scopes, settings.access_token_ttl_seconds)
    refresh, row = _new_refresh_token(settings, user.id, family_id)
    session.add(row)
    await session.commit()
    return TokenResponse(
        access_token=token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh,
        scope=" ".join(scopes),
    )


async def password_grant(
    request: Request, session: AsyncSession, body: TokenRequest
) -> TokenResponse:
    if not body.username:
        raise _missing("username")
    if not body.password:
        raise _missing("password")
    settings: Settings = request.app.state.settings
    account = body.username.strip().lower()
    throttle, address = await _guarded(request, account)
    user = await user_by_email(session, account)
    credential = await _credential(session, user.id) if user is not None else None
    stored = credential.password_hash if credential is not None else None
    matches, new_hash = await check_password(settings, body.password, stored)
    if not matches or user is None or credential is None or not user.active:
        await throttle.failed(account, address)
        raise InvalidCredentials("The email or the password is wrong.", error="invalid_grant")
    await throttle.succeeded(account)
    scopes = narrow(scopes_of_roles(settings, user.roles), body.scope)
    key = await signing_key(request.app)  # before this session writes (SQLite: one writer)
    if new_hash is not None:
        credential.password_hash = new_hash
    return await _user_tokens(request, session, key, user, uuid.uuid4(), scopes)


async def refresh_grant(
    request: Request, session: AsyncSession, body: TokenRequest
) -> TokenResponse:
    if not body.refresh_token:
        raise _missing("refresh_token")
    row: RefreshToken | None = await session.scalar(
        sa.select(RefreshToken).where(RefreshToken.token_hash == _digest(body.refresh_token))
    )
    if row is None:
        raise InvalidCredentials("The refresh token is not known.", error="invalid_grant")
    if row.status != RefreshTokenStatus.ACTIVE:
        await revoke_family(session, row.family_id)
        await session.commit()
        logger.warning("refresh token of family %s reused: family revoked", row.family_id)
        raise InvalidCredentials(
            "The refresh token was already used: every token of its login is revoked.",
            error="invalid_grant",
        )
    if row.expires_at <= utcnow():
        raise InvalidCredentials("The refresh token has expired.", error="invalid_grant")
    user = await session.get(User, row.user_id)
    if user is None or not user.active:
        await revoke_family(session, row.family_id)
        await session.commit()
        raise InvalidCredentials("The user can no longer log in.", error="invalid_grant")
    settings: Settings = request.app.state.settings
    scopes = narrow(scopes_of_roles(settings, user.roles), body.scope)
    key = await signing_key(request.app)  # before this session writes (SQLite: one writer)
    rotated = await session.execute(
        sa.update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.status == RefreshTokenStatus.ACTIVE)
        .values(status=RefreshTokenStatus.ROTATED, version=RefreshToken.version + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(rotated, "rowcount", 0) != 1:  # a concurrent use of the same token won
        await revoke_family(session, row.family_id)
        await session.commit()
        raise InvalidCredentials(
            "The refresh token was already used: every token of its login is revoked.",
            error="invalid_grant",
        )
    return await _user_tokens(request, session, key, user, row.family_id, scopes)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, separator, secret = decoded.partition(":")
    return (client_id, secret) if separator else None


async def client_credentials_grant(request: Request, body: TokenRequest) -> TokenResponse:
    client_id, secret = body.client_id, body.client_secret
    if not client_id and (basic := _basic_credentials(request)) is not None:
        client_id, secret = basic
    if not client_id:
        raise _missing("client_id")
    if not secret:
        raise _missing("client_secret")
    settings: Settings = request.app.state.settings
    account = "client:" + client_id
    throttle, address = await _guarded(request, account)
    client = settings.service_clients.get(client_id)
    expected = client.secret.get_secret_value() if client is not None else secrets.token_hex(16)
    if client is None or not secrets.compare_digest(expected.encode(), secret.encode()):
        await throttle.failed(account, address)
        raise InvalidCredentials(
            "The client id or secret is wrong.",
            error="invalid_client",
            headers={"WWW-Authenticate": 'Basic realm="identity"'},
        )
    await throttle.succeeded(account)
    scopes = narrow(list(client.scopes), body.scope)
    key = await signing_key(request.app)
    ttl = settings.service_token_ttl_seconds
    token = access_token(settings, key, client_id, scopes, ttl, {"client_id": client_id})
    return TokenResponse(access_token=token, expires_in=ttl, scope=" ".join(scopes))


# Routes -----------------------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start-up of identity's own parts, inside the generated app's lifespan (database, events
    and the generated verifier are up): verifier of its own keys, login throttle, the first
    signing key (outside tests, where keys are made on first need) and the admin user."""
    settings: Settings = app.state.settings
    factory: async_sessionmaker[AsyncSession] = app.state.session_factory
    throttle = app.state.login_throttle = LoginThrottle(settings)
    try:
        if settings.app_env != "test":
            async with factory() as session:
                missing = await _active_key(session) is None
            if missing:
                await rotate_signing_keys(factory, settings)
        await bootstrap_admin(app)
    except (SQLAlchemyError, OSError) as error:
        if not database_unavailable(error):
            raise
        # Serve anyway (503 until the database is back, like the generated app): the key is
        # made on first need; the admin user at the next start.
        logger.warning("identity start-up skipped (database unavailable): %s", error)
    if _verifies_own_keys(settings):
        generated: Authenticator = app.state.authenticator
        own = IdentityAuthenticator(settings, factory)
        app.state.authenticator = own
        app.state.rate_limiter.authenticator = own
        await generated.close()
        await own.start()
    try:
        yield
    finally:
        await throttle.close()


router = APIRouter(lifespan=lifespan, tags=TAGS)

TOKEN_SCHEMA = TokenRequest.model_json_schema()


Session = Annotated[AsyncSession, Depends(get_session)]
Users = Annotated[UserRepository, Depends(get_user_repository)]


@router.post(
    "/v1/registrations",
    name="registration_create",
    status_code=201,
    response_model=UserRead,
    responses=problem_responses(409, 422, 429, 503),
    summary="Register a user (role customer)",
)
async def registration_create(
    body: RegistrationRequest, response: Response, repo: Users
) -> UserRead:
    row = await create_user(repo, body.email, body.password, body.display_name, ["customer"])
    response.headers["Location"] = f"/v1/users/{row.id}"
    return UserRead.model_validate(row)


@router.post(
    "/v1/tokens",
    name="token_create",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=problem_responses(400, 401, 415, 422, 429, 503),
    summary="Issue tokens (grants password, refresh_token, client_credentials)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": TOKEN_SCHEMA},
                "application/x-www-form-urlencoded": {"schema": TOKEN_SCHEMA},
            },
        }
    },
)
async def token_create(request: Request, response: Response, session: Session) -> TokenResponse:
    body = await _read_token_request(request)
    response.headers["Cache-Control"] = "no-store"
    if body.grant_type == "password":
        return await password_grant(request, session, body)
    if body.grant_type == "refresh_token":
        return await refresh_grant(request, session, body)
    return await client_credentials_grant(request, body)


@router.get(
    JWKS_PATH,
    name="jwks_read",
    response_model=JsonWebKeySet,
    responses=problem_responses(429, 503),
    summary="The public keys that verify identity's tokens",
)
async def jwks_read(request: Request, response: Response) -> JsonWebKeySet:
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    keys = await published_keys(factory)
    if not keys:
        await signing_key(request.app)
        keys = await published_keys(factory)
    response.headers["Cache-Control"] = "public, max-age=60"
    return JsonWebKeySet.model_validate({"keys": keys})


@router.get(
    "/v1/me",
    name="me_read",
    response_model=UserRead,
    responses=problem_responses(401, 403, 404, 429, 503),
    dependencies=[requires("customer")],
    summary="The user the token belongs to",
)
async def me_read(request: Request, session: Session) -> UserRead:
    subject = request.state.principal.subject
    try:
        user = await session.get(User, uuid.UUID(subject))
    except ValueError:
        user = None
    if user is None:
        raise NotFound("The token's subject is not a user of this service.")
    return UserRead.model_validate(user)


@router.post(
    "/v1/key-rotations",
    name="key_rotation_create",
    status_code=201,
    response_model=KeyRotation,
    responses=problem_responses(401, 403, 429, 503),
    dependencies=[requires("admin")],
    summary="Rotate the signing keys (the previous key stays published)",
)
async def key_rotation_create(request: Request) -> KeyRotation:
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    key = await rotate_signing_keys(factory, request.app.state.settings)
    await _reload_own_keys(request.app)
    published = [str(jwk.get("kid")) for jwk in await published_keys(factory)]
    return KeyRotation(kid=key.kid, published=published)


# Command line: python -m identity_service.custom_routes rotate-keys ------------------------------


async def _rotate_from_command() -> str:
    from .database import create_engine, create_session_factory
    from .settings import get_settings

    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        key = await rotate_signing_keys(create_session_factory(engine), settings)
    finally:
        await engine.dispose()
    return key.kid


def main(argv: Sequence[str]) -> int:
    if list(argv) != ["rotate-keys"]:
        print("usage: python -m identity_service.custom_routes rotate-keys", file=sys.stderr)
        return 2
    print(asyncio.run(_rotate_from_command()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
