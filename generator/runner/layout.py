"""A generated system on disk, as `microforge run` sees it: the `system` answer of its root
`.copier-answers.yml` (services, ports, gateway, issuer, journey) and, per service, its own
answers (the spec it was generated from, its database)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..run import ANSWERS_FILE, RunError
from ..spec import ServiceSpec, SpecError, validate_spec_data
from ..spec.naming import service_snake
from ..system import env_name

STATE_DIR = Path(".microforge") / "run"
"""Where a system's run keeps its databases, broker store, secrets and state (in the system)."""


@dataclass(frozen=True)
class Project:
    """A service or the gateway of the system: its directory and what it was generated with."""

    name: str
    directory: Path
    package: str
    env: str
    """The environment prefix of its name (order-history: ORDER_HISTORY)."""
    port: int
    """Its port in the system answer (the runner uses it when it is free)."""
    database: str | None = None
    """The database it was generated for (postgres | sqlite); None for the gateway."""
    spec: ServiceSpec | None = None


@dataclass(frozen=True)
class SystemLayout:
    """A generated system: its services (in blueprint order), gateway and journey."""

    root: Path
    name: str
    services: tuple[Project, ...]
    gateway: Project | None
    routes: tuple[dict[str, Any], ...]
    issuer: str | None
    journey: tuple[dict[str, Any], ...]

    def service(self, name: str) -> Project:
        """The service called `name`."""
        return next(s for s in self.services if s.name == name)

    @property
    def state_dir(self) -> Path:
        """`<root>/.microforge/run`."""
        return self.root / STATE_DIR


def read_answers(path: Path) -> dict[str, Any]:
    """A `.copier-answers.yml` as a mapping (RunError when it is not one)."""
    import yaml

    try:
        answers = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RunError(f"cannot read {path}: {error}") from None
    if not isinstance(answers, dict):
        raise RunError(f"{path} is not a Copier answers file")
    return answers


def _yaml_answer(value: object) -> object:
    """An answer of type yaml: stored as data, or as YAML text by older versions."""
    if isinstance(value, str):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return None
    return value


def is_system(directory: Path) -> bool:
    """Whether `directory` holds a generated system (answers with kind `system`)."""
    path = directory / ANSWERS_FILE
    if not path.is_file():
        return False
    try:
        answers = read_answers(path)
    except RunError:
        return False
    return answers.get("kind") == "system" or isinstance(_yaml_answer(answers.get("system")), dict)


def _project(root: Path, entry: dict[str, Any]) -> Project:
    name = str(entry.get("name"))
    directory = root / name
    answers_path = directory / ANSWERS_FILE
    if not answers_path.is_file() or not (directory / "pyproject.toml").is_file():
        raise RunError(f"{directory} is missing: the system lists service {name!r}")
    answers = read_answers(answers_path)
    try:
        spec = validate_spec_data(_yaml_answer(answers.get("spec")), str(answers_path))
    except SpecError as error:
        first = error.issues[0].format() if error.issues else str(error)
        raise RunError(f"{answers_path}: its spec is not valid: {first}") from None
    database = answers.get("database")
    return Project(
        name=name,
        directory=directory,
        package=str(entry.get("package") or f"{service_snake(name)}_service"),
        env=str(entry.get("env") or env_name(name)),
        port=int(entry.get("port") or 0),
        database=str(database) if database in ("postgres", "sqlite") else None,
        spec=spec,
    )


def find_system(directory: Path) -> SystemLayout:
    """The system generated in `directory` (RunError when it is not one, or is incomplete)."""
    if not directory.is_dir():
        raise RunError(f"{directory} is not a directory")
    root = directory.resolve()
    answers = read_answers(root / ANSWERS_FILE)
    system = _yaml_answer(answers.get("system"))
    if not isinstance(system, dict) or not isinstance(system.get("services"), list):
        raise RunError(f"{root / ANSWERS_FILE} has no `system` answer (not a generated system)")
    services = tuple(_project(root, entry) for entry in system["services"])
    gateway_answer = system.get("gateway")
    gateway = None
    routes: tuple[dict[str, Any], ...] = ()
    if isinstance(gateway_answer, dict):
        name = str(gateway_answer.get("name", "gateway"))
        directory = root / name
        if not (directory / "pyproject.toml").is_file():
            raise RunError(f"{directory} is missing: the system has a gateway {name!r}")
        gateway = Project(
            name,
            directory,
            f"{service_snake(name)}_service",
            env_name(name),
            int(gateway_answer.get("port") or 8080),
        )
        routes = tuple(r for r in gateway_answer.get("routes") or () if isinstance(r, dict))
    issuer = system.get("auth_issuer")
    journey = tuple(step for step in system.get("journey") or () if isinstance(step, dict))
    return SystemLayout(
        root=root,
        name=str(system.get("name") or root.name),
        services=services,
        gateway=gateway,
        routes=routes,
        issuer=str(issuer) if isinstance(issuer, str) else None,
        journey=journey,
    )
