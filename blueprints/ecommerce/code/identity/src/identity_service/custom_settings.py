"""Settings of identity's own code (custom_routes.py): tokens, login throttling, the admin user,
the service clients and how roles map to scopes.

Yours: created once by microforge, never overwritten by `copier update`. Every field is read from
the upper-cased environment variable (or `.env`); dicts and lists as JSON.
"""

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

DEFAULT_AUDIENCE = (
    "identity,catalog,cart,inventory,order,payment,notification,recommendation,gateway"
)


class ServiceClient(BaseModel):
    """A service that obtains tokens with the OAuth2 client-credentials grant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr = Field(description="The client's secret (client_secret).")
    scopes: tuple[str, ...] = Field(default=(), description="Scopes its tokens carry.")

    @field_validator("secret")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("a client secret may not be empty")
        return value


class CustomSettings(BaseSettings):
    """Settings you add or override; `settings.Settings` inherits them first."""

    token_audience: str = Field(
        default=DEFAULT_AUDIENCE,
        min_length=1,
        description="Comma-separated `aud` list of every access token: each service checks its "
        "own name (AUTH_AUDIENCE) is in it.",
    )
    access_token_ttl_seconds: int = Field(
        default=900, ge=30, le=86_400, description="Lifetime of a user's access token."
    )
    service_token_ttl_seconds: int = Field(
        default=3600, ge=30, le=86_400, description="Lifetime of a client-credentials token."
    )
    refresh_token_ttl_seconds: int = Field(
        default=14 * 86_400,
        ge=60,
        description="Lifetime of a refresh token (each use rotates it and starts a new one).",
    )
    role_scopes: dict[str, tuple[str, ...]] = Field(
        default={"customer": ("customer",), "admin": ("customer", "admin")},
        description="Scopes each role grants (JSON object); a user's token carries the union "
        "of its roles' scopes. Unknown roles grant nothing.",
    )
    service_clients: dict[str, ServiceClient] = Field(
        default={},
        description='Client-credentials clients (JSON): {"<client_id>": {"secret": "...", '
        '"scopes": ["inventory:reserve"]}}.',
    )
    admin_email: str | None = Field(
        default=None,
        max_length=320,
        description="Email of the administrator created at start-up when missing (roles "
        "customer and admin); unset: none is created.",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="Its password (required with ADMIN_EMAIL; no default). An existing admin's "
        "password is never changed by it.",
    )
    login_max_failures_per_account: int = Field(
        default=5,
        ge=1,
        description="Failed logins of one account (email or client id) within the window; "
        "further attempts answer 429 until the oldest failure leaves the window.",
    )
    login_max_failures_per_address: int = Field(
        default=50,
        ge=1,
        description="Failed logins from one client address (TRUSTED_PROXIES apply) within the "
        "window, over all accounts.",
    )
    login_throttle_window_seconds: int = Field(
        default=900, ge=1, description="The moving window of the login throttle."
    )
    password_hash_time_cost: int = Field(
        default=2, ge=1, le=10, description="Argon2id iterations (OWASP: 2 with 19 MiB)."
    )
    password_hash_memory_kib: int = Field(
        default=19_456, ge=1024, description="Argon2id memory in KiB (OWASP: 19456)."
    )
    password_hash_parallelism: int = Field(default=1, ge=1, le=16, description="Argon2id lanes.")
    signing_key_bits: int = Field(
        default=2048, ge=2048, le=8192, description="Size of new RSA signing keys."
    )

    @field_validator("admin_email", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def audience(self) -> list[str]:
        """The `aud` claim of access tokens."""
        return [part.strip() for part in self.token_audience.split(",") if part.strip()]
