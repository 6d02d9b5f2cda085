"""The pydantic model of a system blueprint (`blueprint.yaml`): its structure (keys, types,
names). The rules spanning the blueprint and the specs it names live in `rules.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..spec.naming import (
    DURATION_PATTERN,
    IDENTIFIER_PATTERN,
    RATE_LIMIT_PATTERN,
    SERVICE_NAME_PATTERN,
)

ServiceName = Annotated[str, Field(pattern=SERVICE_NAME_PATTERN)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
RateLimit = Annotated[str, Field(pattern=RATE_LIMIT_PATTERN)]
Database = Literal["postgres", "sqlite"]
Broker = Literal["nats", "rabbitmq", "redis", "kafka"]
PythonVersion = Literal["3.11", "3.12", "3.13"]
ExpectedStatus = Annotated[int, Field(ge=100, le=599)]

PREFIX_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
CALL_PATTERN = r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /[^\s]*$"
RELATIVE_PATH_PATTERN = r"^[^/\\\s][^\\]*$"
BROKERS: tuple[str, ...] = ("nats", "rabbitmq", "redis", "kafka")
DATABASES: tuple[str, ...] = ("postgres", "sqlite")

_CONFIG = ConfigDict(extra="forbid", strict=True)


class ServiceEntry(BaseModel):
    """One service of the system: its spec and, optionally, its code overlay."""

    model_config = ConfigDict(extra="forbid", strict=True, title="BlueprintService")

    spec: Annotated[str, Field(pattern=RELATIVE_PATH_PATTERN)] = Field(
        description="Path of the service's spec (YAML), relative to the blueprint file."
    )
    code: Annotated[str, Field(pattern=RELATIVE_PATH_PATTERN)] | None = Field(
        default=None,
        description="Directory (relative to the blueprint file) whose files are copied into the "
        "service's user-owned files (hooks, handlers, custom routes and settings, sagas, "
        "tests/custom), laid out as in the generated project (src/<package>/hooks/x.py).",
    )
    database: Database | None = Field(
        default=None, description="This service's database; default: the blueprint's."
    )


class AuthSpec(BaseModel):
    """Who issues the system's tokens."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Auth")

    issuer: ServiceName = Field(
        description="The service that issues tokens and serves /.well-known/jwks.json."
    )


class RouteSpec(BaseModel):
    """A gateway route: /api/<prefix>/... goes to <service>/..."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Route")

    prefix: Annotated[str, Field(pattern=PREFIX_PATTERN)] = Field(
        description="First path segment after /api/ (lowercase letters, digits, '-'); unique."
    )
    service: ServiceName = Field(description="The service of the blueprint it routes to.")
    auth: Literal["required", "optional"] = Field(
        default="optional",
        description="required: the gateway checks a JWT before forwarding; optional: the "
        "services decide.",
    )


class GatewaySpec(BaseModel):
    """The system's API gateway."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Gateway")

    name: ServiceName = Field(default="gateway", description="Its project and directory name.")
    routes: list[RouteSpec] = Field(min_length=1, description="Its routes, one per prefix.")
    rate_limit: RateLimit = Field(
        default="600/minute", description="Requests per client: '<N>/<second|minute|hour|day>'."
    )


class JourneyStep(BaseModel):
    """One call of the main user journey (replayed by the load test and `run --smoke`)."""

    model_config = ConfigDict(extra="forbid", strict=True, title="JourneyStep")

    name: Identifier = Field(description="snake_case name of the step.")
    call: Annotated[str, Field(pattern=CALL_PATTERN)] = Field(
        description="'<METHOD> <path>' through the gateway, e.g. 'GET /api/catalog/v1/products'; "
        "'{var}' is replaced by a saved or built-in variable."
    )
    token: Identifier | None = Field(
        default=None,
        description="The variable holding the bearer token sent along (saved by an earlier step).",
    )
    body: dict[str, Any] | list[Any] | None = Field(
        default=None,
        description="The JSON body sent; '{var}' in its strings is replaced (a string that is "
        "only '{var}' takes the variable's value as it is).",
    )
    expect: ExpectedStatus | list[ExpectedStatus] | None = Field(
        default=None,
        description="The status (or statuses) expected; default: any 2xx.",
    )
    save: dict[Identifier, str] | None = Field(
        default=None,
        description="Variables saved from the JSON answer: name -> dotted path "
        "('items.0.id', 'access_token').",
    )
    until: dict[str, Any] | None = Field(
        default=None,
        description="Repeat the call until every dotted path of the answer has the value given "
        "(for effects of events); at most `within`.",
    )
    within: Annotated[str, Field(pattern=DURATION_PATTERN)] | None = Field(
        default=None,
        description="How long `until` may keep repeating the call, e.g. '30s' (default 30s).",
    )


class DeploySpec(BaseModel):
    """Which deployment artefacts the system gets."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Deploy")

    compose: bool = Field(default=True, description="compose.yaml and its configuration.")
    kubernetes: bool = Field(default=True, description="kustomize base and overlays.")
    helm: bool = Field(default=True, description="A Helm umbrella chart.")
    istio: bool = Field(default=True, description="An istio kustomize component.")


class Blueprint(BaseModel):
    """A microforge system blueprint."""

    model_config = ConfigDict(extra="forbid", strict=True, title="Blueprint")

    name: ServiceName = Field(description="The system's name (the generated repository's).")
    description: str | None = Field(default=None, description="What the system is.")
    services: list[ServiceEntry] = Field(min_length=1, description="The services, in order.")
    auth: AuthSpec | None = Field(
        default=None,
        description="The token issuer; without it the services use AUTH_JWKS_URL.",
    )
    gateway: GatewaySpec | None = Field(default=None, description="The API gateway.")
    broker: Broker = Field(default="nats", description="The message broker of the events.")
    database: Database = Field(default="postgres", description="Default database of services.")
    python_version: PythonVersion = Field(
        default="3.11", description="Lowest Python version of every project."
    )
    journey: list[JourneyStep] = Field(
        default_factory=list, description="The main user journey, call by call."
    )
    deploy: DeploySpec = Field(
        default_factory=DeploySpec, description="Which deployment artefacts to generate."
    )


MODEL_AT: dict[tuple[str, ...], type[BaseModel]] = {
    (): Blueprint,
    ("services",): ServiceEntry,
    ("auth",): AuthSpec,
    ("gateway",): GatewaySpec,
    ("gateway", "routes"): RouteSpec,
    ("journey",): JourneyStep,
    ("deploy",): DeploySpec,
}
"""The model of the mapping found at a path shape (the path without list indices)."""
