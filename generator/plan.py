"""The plan layer: what to render for one service, decided without touching the disk's output.

From a validated spec (and the mapping the user wrote) plus the generation options, build a
`RenderPlan`: the Copier template root, the answers (`data`) to give it, and the names the
generated project will carry. Pure and cheap: no Copier import, no writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .spec import ServiceSpec, load_spec, validate_spec_data
from .spec.loader import load_yaml, to_plain

TEMPLATE_CONFIG = "copier.yml"
DEFAULT_DATABASE = "postgres"
DEFAULT_PYTHON_VERSION = "3.11"
WRAPPER_KEY = "spec"


class PlanError(Exception):
    """The options or the template cannot make a render plan (a one-line user message)."""


@dataclass(frozen=True)
class SpecSource:
    """A validated spec together with the mapping the user wrote (plain dicts and lists)."""

    spec: ServiceSpec
    data: dict[str, Any]


@dataclass(frozen=True)
class RenderPlan:
    """Everything the render layer needs for one service."""

    template_root: Path
    data: dict[str, Any]
    package: str
    project_name: str


def template_root() -> Path:
    """The directory holding the service template's `copier.yml` (this repository's root).

    microforge renders the template shipped next to its own source (`generator/` is the package).
    """
    root = Path(__file__).resolve().parent.parent  # the repository holding the package
    if not (root / TEMPLATE_CONFIG).is_file():
        raise PlanError(
            f"the service template was not found: no {TEMPLATE_CONFIG} in {root} "
            "(install microforge from a clone of its repository: uv pip install -e <repo>)"
        )
    return root


def read_spec(path: str | Path) -> SpecSource:
    """Load and validate the spec at `path`; keep the mapping as written for Copier's answers.

    A file whose only key is `spec` (a Copier answers/data file) is unwrapped, as the validator
    does. Raises `microforge.spec.SpecError` for every problem.
    """
    spec = load_spec(path)
    text = Path(path).read_bytes().decode("utf-8-sig")
    data = to_plain(load_yaml(text).data)
    return SpecSource(spec, unwrap(data, str(path)))


def spec_from_data(data: Mapping[str, Any], filename: str = "<spec>") -> SpecSource:
    """Validate an in-memory spec mapping (built interactively, for instance)."""
    spec = validate_spec_data(data, filename)
    return SpecSource(spec, unwrap(to_plain(data), filename))


def unwrap(data: object, filename: str) -> dict[str, Any]:
    """The spec mapping itself, without a `spec:` wrapper."""
    if (
        isinstance(data, dict)
        and list(data) == [WRAPPER_KEY]
        and isinstance(data[WRAPPER_KEY], dict)
    ):
        data = data[WRAPPER_KEY]
    if not isinstance(data, dict):  # validation guarantees a mapping; this keeps mypy informed
        raise PlanError(f"{filename}: the spec must be a mapping")
    return {str(key): value for key, value in data.items()}


def question_choices(root: Path, question: str) -> list[str]:
    """The allowed values of a `copier.yml` question with `choices` (empty when unrestricted)."""
    import yaml

    try:
        text = (root / TEMPLATE_CONFIG).read_text(encoding="utf-8")
        config = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as error:
        raise PlanError(f"cannot read {root / TEMPLATE_CONFIG}: {error}") from None
    entry = config.get(question) if isinstance(config, dict) else None
    choices = entry.get("choices") if isinstance(entry, dict) else None
    if isinstance(choices, dict):
        return [str(value) for value in choices.values()]
    if isinstance(choices, list):
        return [str(value) for value in choices]
    return []


def plan_service(
    source: SpecSource,
    *,
    database: str = DEFAULT_DATABASE,
    python_version: str = DEFAULT_PYTHON_VERSION,
    root: Path | None = None,
) -> RenderPlan:
    """The render plan of one service; checks the options against the template's choices."""
    root = template_root() if root is None else root
    options = {"database": database, "python_version": python_version}
    for question, value in options.items():
        allowed = question_choices(root, question)
        if allowed and value not in allowed:
            raise PlanError(
                f"--{question.replace('_', '-')} {value!r} is not one of: {', '.join(allowed)}"
            )
    return RenderPlan(
        template_root=root,
        data={WRAPPER_KEY: source.data, **options},
        package=source.spec.package,
        project_name=f"{source.spec.name}-service",
    )
