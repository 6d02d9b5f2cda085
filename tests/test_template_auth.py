"""The template's authentication and rate limiting: scopes from the spec land on the right routes,
the spec's rate limit becomes the default, and a service whose every operation is public (a shape
the main matrix does not cover) still passes its own auth and rate-limit suites."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from generation import EXAMPLE_SPEC, copier_copy, load_yaml, run

PUBLIC_SPEC: dict[str, Any] = {
    "name": "notice-board",
    "description": "Notices anyone may read and write",
    "entities": [
        {
            "name": "Notice",
            "fields": [
                {"name": "title", "type": "string", "max_length": 80, "required": True},
                {
                    "name": "state",
                    "type": "enum",
                    "values": ["DRAFT", "POSTED"],
                    "default": "DRAFT",
                },
            ],
            "permissions": dict.fromkeys(
                ["create", "read", "list", "update", "delete", "post"], "public"
            ),
            "states": {
                "field": "state",
                "transitions": [{"name": "post", "from": ["DRAFT"], "to": "POSTED"}],
            },
        }
    ],
    "rate_limit": {"default": "50/second"},
}


def decorators(source: str) -> dict[str, str]:
    """Each route function's name → the text of its decorator."""
    found = re.findall(r"(@router\.\w+\((?:.|\n)*?\n\))\nasync def (\w+)\(", source)
    return {name: decorator for decorator, name in found}


def test_scopes_and_rate_limit_come_from_the_spec(tmp_path: Path) -> None:
    spec = load_yaml(EXAMPLE_SPEC)
    project = copier_copy(spec, tmp_path / "inventory")
    package = project / "src" / "inventory_service"
    routes = decorators((package / "api" / "product.py").read_text())
    assert 'dependencies=[requires("product:write")]' in routes["create_product"]
    assert 'dependencies=[requires("product:admin")]' in routes["delete_product"]
    assert 'dependencies=[requires("product:write")]' in routes["discontinue_product"]
    for public in ("read_product", "list_products"):
        assert "dependencies=" not in routes[public]
        assert "401" not in routes[public]
    assert "problem_responses(401, 403, 409, 422, 429, 503)" in routes["create_product"]
    security = (package / "security.py").read_text()
    scopes = re.search(r"SCOPES: tuple\[str, \.\.\.\] = \(([^)]*)\)", security)
    assert scopes is not None
    assert set(re.findall(r'"([^"]+)"', scopes.group(1))) == {
        "category:write",
        "category:admin",
        "product:write",
        "product:admin",
    }
    settings = (package / "settings.py").read_text()
    assert spec["rate_limit"]["default"] == "100/minute"
    assert 'default="100/minute"' in settings
    assert ".dev/" in (project / ".gitignore").read_text()
    assert "| Product | delete | `product:admin` |" in (project / "README.md").read_text()


def test_no_rate_limit_in_the_spec_means_none_by_default(tmp_path: Path) -> None:
    spec = {key: value for key, value in load_yaml(EXAMPLE_SPEC).items() if key != "rate_limit"}
    project = copier_copy(spec, tmp_path / "inventory")
    settings = (project / "src" / "inventory_service" / "settings.py").read_text()
    assert re.search(r"rate_limit_default: str \| None = Field\(\s*default=None,", settings)


@pytest.mark.generated
def test_an_all_public_service_passes_its_auth_rate_limit_and_openapi_suites(
    tmp_path: Path,
) -> None:
    project = copier_copy(PUBLIC_SPEC, tmp_path / "service")
    security = (project / "src" / "notice_board_service" / "security.py").read_text()
    assert "SCOPES: tuple[str, ...] = ()" in security
    run(project, "uv", "sync", "--quiet")
    run(project, "uv", "run", "ruff", "check", ".")
    run(project, "uv", "run", "ruff", "format", "--check", "--diff", ".")
    run(project, "uv", "run", "mypy")
    result = run(
        project,
        "uv",
        "run",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_auth.py",
        "tests/test_rate_limit.py",
        "tests/test_notice.py",
        "tests/test_openapi.py",
    )
    assert " passed" in result.stdout
