"""Shared fixtures of the generator tests: the repository, the example spec, CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = REPO_ROOT / "tests" / "specs" / "inventory_example.yaml"

CliInvoker = Callable[..., Result]
ProcessRunner = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def repo_root() -> Path:
    """The microforge repository (holds copier.yml and template/)."""
    return REPO_ROOT


@pytest.fixture
def example_spec() -> Path:
    """The README's example spec: the inventory service of the e-commerce blueprint."""
    return EXAMPLE


@pytest.fixture(scope="session")
def library_system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The library test system (tests/blueprints/library) as `microforge blueprint --no-lock`
    writes it, generated once per session for every xdist worker. Read-only: copy it first to
    change it."""
    from blueprint_system import generated_library

    return generated_library(tmp_path_factory)


@pytest.fixture(scope="session")
def ecommerce_system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The e-commerce system (blueprints/ecommerce: its specs and code overlays) as
    `microforge blueprint --no-lock` writes it: a git repository with one commit, the system
    files at the root (`.copier-answers.yml` holds the `system` answer), each service and the
    gateway in its directory. Generated once per session for every xdist worker (about 10 s);
    the deployment checks in tests/test_system_deploy.py and the end-to-end tests of the shop
    share it. Read-only: a test that changes its files works on a copy (`microforge run`
    keeps its state under the system's `.microforge/`)."""
    from blueprint_system import generated_ecommerce

    return generated_ecommerce(tmp_path_factory)


@pytest.fixture
def cli() -> CliInvoker:
    """Invoke the `microforge` app in-process; `result.stdout` and `result.stderr` are apart."""
    from microforge.cli import app

    runner = CliRunner()

    def invoke(*args: str | os.PathLike[str], input: str | None = None) -> Result:
        return runner.invoke(app, [str(arg) for arg in args], input=input)

    return invoke


@pytest.fixture
def microforge_process() -> ProcessRunner:
    """Run `microforge` as a user would: a fresh process, stdin not a terminal."""

    def run(
        *args: str | os.PathLike[str], cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "microforge.cli", *map(str, args)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
