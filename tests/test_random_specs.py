"""The template's promise, tested on random specs: for ANY valid spec, the generated project
renders, compiles and passes ruff (fast test, many specs), and mypy and its own test suite on
SQLite and PostgreSQL (slow test, a few seeded specs).

Reproduce a slow-test failure from the seed in its test id (`spec-<seed>-<i>`):
    MICROFORGE_RANDOM_SEED=<seed> pytest -m generated tests/test_random_specs.py -k "<seed>-<i>"
More projects: MICROFORGE_RANDOM_SPECS=40 (default 2); more renders: MICROFORGE_RENDER_SPECS=500
(default 60).
"""

from __future__ import annotations

import datetime
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from generation import POSTGRES_URL, SPECS, copier_copy, execute, load_yaml, postgres_answers
from hypothesis import HealthCheck, given, settings
from spec_strategies import (
    UNSUPPORTED_ENTITY_NAMES,
    UNSUPPORTED_FIELD_NAMES,
    seeded_spec,
    valid_specs,
)

from microforge.spec import SpecError, validate_spec_data


def _seed() -> int:
    """This run's seed: MICROFORGE_RANDOM_SEED, else the CI run's id, else today's date, so
    every pytest process of a run (xdist workers too) draws the same specs."""
    for name in ("MICROFORGE_RANDOM_SEED", "GITHUB_RUN_ID", "CI_PIPELINE_ID"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return int(datetime.datetime.now(datetime.UTC).strftime("%Y%m%d"))


SEED = _seed()
RANDOM_SPECS = int(os.environ.get("MICROFORGE_RANDOM_SPECS", "2"))


def spec_yaml(spec: dict[str, Any]) -> str:
    return yaml.safe_dump({"spec": spec}, sort_keys=False, allow_unicode=True)


def render(spec: dict[str, Any], dest: Path) -> Path:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Dirty template changes included")
        return copier_copy(spec, dest)


def check(project: Path, spec: dict[str, Any], label: str, *command: str, **env: str) -> str:
    """Run `command` in the generated project; on failure show the spec that produced it."""
    result = execute(project, command, env, timeout=1800)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} failed ({result.returncode}) for the spec {label}:\n"
            f"{spec_yaml(spec)}\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}",
            pytrace=False,
        )
    return result.stdout


@settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(valid_specs())
def test_strategy_draws_only_valid_specs(spec: dict[str, Any]) -> None:
    try:
        validate_spec_data(spec)
    except SpecError as error:
        pytest.fail(f"the strategy drew an invalid spec:\n{spec_yaml(spec)}\n{error}")


UNSUPPORTED = [
    *(pytest.param("Item", name, id=f"field-{name}") for name in UNSUPPORTED_FIELD_NAMES),
    *(pytest.param(name, "title", id=f"entity-{name}") for name in UNSUPPORTED_ENTITY_NAMES),
]


@pytest.mark.parametrize(("entity", "field"), UNSUPPORTED)
def test_validator_refuses_what_the_template_cannot_support(entity: str, field: str) -> None:
    """Names the generated code cannot take are refused by the validator, not rendered."""
    spec = {
        "name": "shop",
        "entities": [{"name": entity, "fields": [{"name": field, "type": "text"}]}],
    }
    with pytest.raises(SpecError):
        validate_spec_data(spec)


@settings(
    max_examples=int(os.environ.get("MICROFORGE_RENDER_SPECS", "60")),
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=valid_specs())
def test_any_valid_spec_renders_to_ruff_clean_python(
    tmp_path_factory: pytest.TempPathFactory, spec: dict[str, Any]
) -> None:
    validate_spec_data(spec)
    project = render(spec, tmp_path_factory.mktemp("project") / "service")
    for path in sorted(project.rglob("*.py")):
        try:
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        except SyntaxError as error:
            pytest.fail(f"{path.relative_to(project)}: {error}\n{spec_yaml(spec)}")
    check(project, spec, "drawn by Hypothesis", sys.executable, "-m", "ruff", "check", "-q", ".")
    check(
        project, spec, "drawn by Hypothesis", sys.executable, "-m", "ruff", "format", "--check", "."
    )


LONGEST_NAMES = SPECS / "long_names.yaml"
"""Every name as long as the validator allows (random specs draw short names)."""


def test_the_longest_names_render_to_ruff_clean_python(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    spec = load_yaml(LONGEST_NAMES)
    validate_spec_data(spec)
    project = render(spec, tmp_path_factory.mktemp("project") / "service")
    label = LONGEST_NAMES.name
    check(project, spec, label, sys.executable, "-m", "ruff", "check", "-q", ".")
    check(project, spec, label, sys.executable, "-m", "ruff", "format", "--check", "--diff", ".")


@pytest.mark.generated
@pytest.mark.parametrize("index", range(RANDOM_SPECS), ids=lambda i: f"spec-{SEED}-{i}")
def test_any_valid_spec_gives_a_project_that_passes_its_own_checks(
    tmp_path: Path, index: int
) -> None:
    label = f"{SEED}-{index}"
    spec = seeded_spec(label)
    print(f"seed {label}:\n{spec_yaml(spec)}")
    validate_spec_data(spec)
    project = render(spec, tmp_path / "service")
    check(project, spec, label, "uv", "sync", "--quiet")
    check(project, spec, label, "uv", "run", "ruff", "check", ".")
    check(project, spec, label, "uv", "run", "ruff", "format", "--check", ".")
    check(project, spec, label, "uv", "run", "mypy")
    pytest_command = ("uv", "run", "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in check(project, spec, label, *pytest_command)
    if postgres_answers():
        url = os.environ.get("TEST_DATABASE_URL", POSTGRES_URL)
        assert " passed" in check(project, spec, label, *pytest_command, TEST_DATABASE_URL=url)
    elif os.environ.get("CI"):
        pytest.fail("CI must run the PostgreSQL leg, but 127.0.0.1:5432 does not answer")
