"""Helpers for tests that generate projects from the template and run their own tools."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "tests" / "specs"
EXAMPLE_SPEC = REPO / "blueprints" / "ecommerce" / "specs" / "inventory.yaml"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def copier_copy(spec: dict[str, Any], dest: Path, **answers: Any) -> Path:
    """Render the template like a plain Copier user would: defaults, no --trust."""
    import copier

    copier.run_copy(
        str(REPO),
        str(dest),
        data={"spec": spec, **answers},
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref="HEAD",
    )
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a generated project's tools: not this repo's virtualenv."""
    inherited = {"VIRTUAL_ENV", "TEST_DATABASE_URL"}  # each leg says which database it wants
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    env.update({"UV_NO_PROGRESS": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra})
    return env


def execute(
    project: Path, command: tuple[str, ...], env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `project` with the project's clean environment, capturing its output."""
    return subprocess.run(
        command,
        cwd=project,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run(project: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `command` in `project`; fail the test with its output when it fails."""
    result = execute(project, command, env)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed in {project} ({result.returncode}):\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    return result


def postgres_answers() -> bool:
    """Whether the local PostgreSQL server accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False
