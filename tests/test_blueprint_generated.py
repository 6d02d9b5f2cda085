"""The library system's services pass their own checks, with the blueprint's code overlay in
place: ruff, ruff format and mypy where an overlay was copied (code from specs alone is the
template tests' business), and in every service the tests that the overlay and the system's
graph touch (your tests in tests/custom, the domain hooks, the contract tests: each consumer
writes its pacts), the three services in parallel; then every provider is verified against the
pacts of its consumers in the system (HTTP calls and event messages), as `make contracts` does.

The services' whole suites are the template's business (tests/test_template.py); this is the
cheapest run that proves the generated system holds together."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from blueprint_system import LIBRARY, generated_library
from generation import execute

pytestmark = pytest.mark.generated

SERVICES = ("members", "books", "loans")
PYTEST = ("uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly")
WITH_OVERLAY = ("books", "loans")
LINT: tuple[tuple[str, ...], ...] = (
    ("uv", "run", "ruff", "check", "."),
    ("uv", "run", "ruff", "format", "--check", "."),
    ("uv", "run", "mypy"),
)
TESTS = (*PYTEST, "tests/custom", "tests/contract", "tests/test_domain_hooks.py")


def _checks(project: Path) -> str:
    """Run the steps in `project`; '' when all pass, else the failing step's output."""
    lint = LINT if project.name in WITH_OVERLAY else ()
    for command in (("uv", "sync", "--quiet"), *lint, TESTS):
        result = execute(project, command, {}, timeout=900)
        if result.returncode != 0:
            return (
                f"{project.name}: {' '.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout[-5000:]}\n{result.stderr[-3000:]}"
            )
    return ""


def _verify(project: Path, pacts: Path) -> str:
    command = (*PYTEST, "-rs", "tests/contract/test_provider.py")
    result = execute(project, command, {"PACT_DIR": str(pacts)}, timeout=900)
    if result.returncode != 0 or " passed" not in result.stdout:
        return f"{project.name}: provider verification failed:\n{result.stdout[-5000:]}"
    return ""


def test_every_service_passes_its_checks_and_its_consumers_pacts(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    assert sorted(WITH_OVERLAY) == sorted(p.name for p in (LIBRARY / "code").iterdir())
    library = generated_library(tmp_path_factory)
    system = tmp_path / "library"
    shutil.copytree(library, system, ignore=shutil.ignore_patterns(".git"))
    projects = [system / name for name in SERVICES]
    with ThreadPoolExecutor(len(projects)) as pool:
        failures = [failure for failure in pool.map(_checks, projects) if failure]
    assert not failures, "\n\n".join(failures)
    pacts = tmp_path / "pacts"
    pacts.mkdir()
    for project in projects:
        for pact in (project / "pacts").glob("*.json"):
            shutil.copy(pact, pacts / pact.name)
    names = sorted(p.name for p in pacts.iterdir())
    assert names == [
        "books-loans.json",
        "loans-books.json",
        "loans-members.json",
        "members-loans.json",
    ]
    providers = {json.loads((pacts / n).read_text())["provider"]["name"] for n in names}
    assert providers == set(SERVICES)
    with ThreadPoolExecutor(len(projects)) as pool:
        failures = [f for f in pool.map(lambda p: _verify(p, pacts), projects) if f]
    assert not failures, "\n\n".join(failures)
