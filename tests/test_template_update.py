"""`copier update` across template versions built from this repository's history.

A temporary clone of the repository gets three PEP 440 tags: `0.1.0` on an earlier commit (before
the user-owned files existed), `0.2.0` on the current tree, `0.3.0` on a commit made here that
changes generated files and the templates of user-owned ones. Projects generated at an old tag,
committed and edited like a user would, are moved to a newer tag with plain `copier update`: the
user's files stay byte for byte, edits of generated files are merged (or left between Copier's
conflict markers), the user's domain hooks are honoured, and the project's own checks pass.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from generation import REPO, run

OLD_COMMIT = "fc607a9"
"""The template before user-owned files (hooks, custom routes, settings, tests) existed."""

SPEC: dict[str, Any] = yaml.safe_load(
    """
    name: stock
    description: Items in stock
    entities:
      - name: Item
        fields:
          - {name: sku, type: string, max_length: 32, required: true, unique: true}
          - {name: quantity, type: integer, min: 0, default: 0}
          - {name: status, type: enum, values: [ACTIVE, RETIRED], default: ACTIVE}
        states:
          field: status
          transitions:
            - {name: retire, from: [ACTIVE], to: RETIRED}
    """
)
PACKAGE = "stock_service"
MARK = "# template 0.3.0"
CONFLICT_START = "<<<<<<< before updating"
CONFLICT_END = ">>>>>>> after updating"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "microforge tests",
    "GIT_AUTHOR_EMAIL": "tests@microforge.invalid",
    "GIT_COMMITTER_NAME": "microforge tests",
    "GIT_COMMITTER_EMAIL": "tests@microforge.invalid",
}

# The user's own code, written into the project generated at 0.2.0 -----------------------------
USER_HOOKS = '''"""Domain rules of Item (ours)."""

from typing import Any

from .. import entity_hooks
from ..models.item import Item
from ..problems import Conflict


class ItemHooks(entity_hooks.EntityHooks[Item]):
    """SKUs are trimmed and never reserved; quantities stay under the cap; KEEP- items stay."""

    async def before_create(
        self,
        ctx: entity_hooks.HookContext,
        values: dict[str, Any],
    ) -> dict[str, Any]:
        sku = str(values["sku"]).strip()
        if sku.lower().startswith("reserved-"):
            raise entity_hooks.invalid("sku", "SKUs starting with reserved- are ours")
        return {**values, "sku": sku}

    async def after_create(
        self,
        ctx: entity_hooks.HookContext,
        row: Item,
    ) -> None:
        if row.quantity > ctx.settings.max_item_quantity:
            raise Conflict(f"at most {ctx.settings.max_item_quantity} items of a SKU")

    async def before_transition(
        self,
        ctx: entity_hooks.HookContext,
        row: Item,
        transition: str,
    ) -> None:
        if transition == "retire" and row.sku.startswith("KEEP-"):
            raise Conflict("KEEP- items never retire")
'''
USER_SETTINGS = '''"""Our settings."""

from pydantic import Field
from pydantic_settings import BaseSettings


class CustomSettings(BaseSettings):
    """Ours."""

    max_item_quantity: int = Field(default=2**31 - 1, ge=0)
'''
USER_ROUTES = '''"""Our routes."""

from fastapi import APIRouter

from .security import requires

router = APIRouter()


@router.get("/v1/ping", dependencies=[requires("item:read")])
async def ping() -> dict[str, str]:
    return {"ping": "pong"}
'''
USER_TESTS = '''"""Our rules, through the API."""

import pytest
from fastapi.testclient import TestClient

from stock_service.settings import Settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The generated test settings with our cap."""
    return settings.model_copy(update={"max_item_quantity": 100})


def test_reserved_sku_is_refused_and_nothing_written(client: TestClient) -> None:
    refused = client.post("/v1/items", json={"sku": "Reserved-1"})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in refused.json()["errors"]] == ["sku"]
    assert client.get("/v1/items").json()["items"] == []


def test_sku_is_trimmed(client: TestClient) -> None:
    created = client.post("/v1/items", json={"sku": "  ab-1 "})
    assert created.status_code == 201, created.text
    assert created.json()["sku"] == "ab-1"


def test_after_hook_rolls_the_insert_back(client: TestClient) -> None:
    refused = client.post("/v1/items", json={"sku": "big", "quantity": 101})
    assert refused.status_code == 409, refused.text
    assert client.get("/v1/items").json()["items"] == []
    assert client.post("/v1/items", json={"sku": "big", "quantity": 100}).status_code == 201


def test_transition_guard(client: TestClient) -> None:
    item = client.post("/v1/items", json={"sku": "KEEP-1"}).json()
    refused = client.post(f"/v1/items/{item['id']}/retire")
    assert refused.status_code == 409, refused.text
    assert client.get(f"/v1/items/{item['id']}").json()["status"] == "ACTIVE"


def test_our_route(client: TestClient, anonymous_client: TestClient) -> None:
    assert client.get("/v1/ping").json() == {"ping": "pong"}
    assert anonymous_client.get("/v1/ping").status_code == 401
'''
USER_SERVICE_TEST = """

def test_added_by_us(client: TestClient) -> None:
    assert client.get("/health").status_code == 200
"""
USER_PRICING = '''"""Prices (our own module)."""

from decimal import Decimal


def with_tax(amount: Decimal) -> Decimal:
    """`amount` with 20% tax."""
    return amount * Decimal("1.2")
'''


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"git {' '.join(args)} in {cwd}:\n{result.stderr}"
    return result.stdout


def _edit(path: Path, old: str, new: str) -> None:
    """Replace `old` (which must be there: else this test needs updating) by `new` in `path`."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} no longer holds {old!r}: update this test's template edit"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository with the tags 0.1.0 (OLD_COMMIT), 0.2.0 (the working tree) and
    0.3.0 (0.2.0 plus edits of generated and user-owned templates)."""
    found = subprocess.run(
        ["git", "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"], cwd=REPO, capture_output=True
    )
    if found.returncode != 0:
        pytest.fail(
            f"commit {OLD_COMMIT} (template 0.1.0 of this test) is not in {REPO}: the update "
            "test needs the repository's full history (git fetch --unshallow)"
        )
    clone = tmp_path_factory.mktemp("template") / "microforge"
    _git(REPO, "clone", "--quiet", "--no-hardlinks", str(REPO), str(clone))
    for tag in _git(clone, "tag", "--list").split():
        _git(clone, "tag", "--delete", tag)  # only the versions below exist in the clone
    _git(clone, "tag", "0.1.0", OLD_COMMIT)
    # 0.2.0 is the tree under test, uncommitted changes included (as `copier copy --vcs-ref HEAD`
    # would render it).
    _git(clone, f"--work-tree={REPO}", "add", "--all")
    if _git(clone, "diff", "--cached", "--name-only").strip():
        _git(clone, "commit", "--quiet", "--no-verify", "-m", "the working tree under test")
    _git(clone, "reset", "--quiet", "--hard")
    _git(clone, "clean", "-fdq")
    _git(clone, "tag", "0.2.0")
    package = clone / "template" / "src" / "{{ model.package }}"
    hooks = package / "hooks"
    for user_owned in (hooks / "__init__.py.jinja", next(hooks.glob("{%*.py.jinja"))):
        user_owned.write_text(user_owned.read_text() + f"\n{MARK}\n", encoding="utf-8")
    _edit(
        clone / "template" / "README.md.jinja",
        "# {{ model.title }} service\n",
        "# {{ model.title }} service, template 0.3.0\n",
    )
    service_test = clone / "template" / "tests" / "test_service.py.jinja"
    service_test.write_text(f"{MARK}\n{service_test.read_text()}", encoding="utf-8")
    _git(clone, "commit", "--quiet", "--all", "--no-verify", "-m", "template 0.3.0")
    _git(clone, "tag", "0.3.0")
    return clone


def _generate(template: Path, dest: Path, ref: str) -> Path:
    import copier

    copier.run_copy(
        str(template),
        str(dest),
        data={"spec": SPEC, "database": "sqlite"},
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref=ref,
    )
    _git(dest, "init", "--quiet")
    _commit_all(dest, f"generated at {ref}")
    return dest


def _commit_all(project: Path, message: str) -> None:
    _git(project, "add", "--all")
    _git(project, "commit", "--quiet", "--no-verify", "-m", message)


def _update(project: Path, ref: str) -> None:
    import copier

    assert not _git(project, "status", "--porcelain").strip(), "copier update needs a clean tree"
    copier.run_update(
        str(project),
        defaults=True,
        overwrite=True,
        unsafe=False,
        quiet=True,
        conflict="inline",
        vcs_ref=ref,
    )
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == ref
    assert answers["spec"] == SPEC
    assert not list(project.rglob("*.rej")), "copier left rejected hunks"


def _conflicted(project: Path) -> list[str]:
    """Files holding Copier's inline conflict markers."""
    found = []
    for path in project.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        if CONFLICT_START in text and CONFLICT_END in text:
            found.append(str(path.relative_to(project)))
    return sorted(found)


def _project_checks(project: Path) -> str:
    """The generated project's own checks; the pytest report (with -rA: every test's outcome)."""
    run(project, "uv", "sync", "--quiet")
    # the initial migration is never rewritten: what the update changed in the models (the
    # outbox tables since 0.1.0, for one) is a new revision, as the project's README says
    run(project, "uv", "run", "python", "-m", PACKAGE, "makemigrations", "-m", "template update")
    run(project, "uv", "run", "ruff", "check", ".")
    run(project, "uv", "run", "ruff", "format", "--check", ".")
    run(project, "uv", "run", "mypy")
    return run(project, "uv", "run", "pytest", "-q", "-rA", "-p", "no:cacheprovider").stdout


@pytest.mark.generated
def test_update_from_an_older_release_adds_the_user_files_and_keeps_user_code(
    template_repo: Path, tmp_path: Path
) -> None:
    project = _generate(template_repo, tmp_path / "stock", "0.1.0")
    package = project / "src" / PACKAGE
    assert not (package / "hooks").exists(), f"{OLD_COMMIT} should predate the hooks"
    (package / "pricing.py").write_text(USER_PRICING, encoding="utf-8")
    _edit(project / "README.md", "# Stock service\n", "# Stock service (ours)\n")
    _commit_all(project, "our pricing module and README title")

    _update(project, "0.2.0")

    assert (package / "pricing.py").read_text() == USER_PRICING
    for created in ("hooks/__init__.py", "hooks/item.py", "custom_routes.py", "custom_settings.py"):
        assert "never overwritten by `copier update`" in (package / created).read_text(), created
    assert (project / "tests" / "custom" / "test_custom.py").exists()
    assert "# Stock service (ours)" in (project / "README.md").read_text()  # merged or conflicted
    assert set(_conflicted(project)) <= {"README.md"}, _conflicted(project)
    report = _project_checks(project)
    assert "PASSED tests/custom/test_custom.py::test_your_routes_and_settings_are_wired" in report


@pytest.mark.generated
def test_update_keeps_user_files_merges_generated_edits_and_honours_hooks(
    template_repo: Path, tmp_path: Path
) -> None:
    project = _generate(template_repo, tmp_path / "stock", "0.2.0")
    package = project / "src" / PACKAGE
    untouched_hooks_init = (package / "hooks" / "__init__.py").read_text()
    ours = {
        package / "hooks" / "item.py": USER_HOOKS,
        package / "custom_settings.py": USER_SETTINGS,
        package / "custom_routes.py": USER_ROUTES,
        project / "tests" / "custom" / "test_rules.py": USER_TESTS,
    }
    for path, text in ours.items():
        path.write_text(text, encoding="utf-8")
    service_test = project / "tests" / "test_service.py"
    service_test.write_text(service_test.read_text() + USER_SERVICE_TEST, encoding="utf-8")
    _edit(project / "README.md", "# Stock service\n", "# Stock service (ours)\n")
    _commit_all(project, "our hooks, routes, settings and tests; edits of generated files")

    _update(project, "0.3.0")

    for path, text in ours.items():
        assert path.read_text() == text, f"copier update changed {path}"
    assert (package / "hooks" / "__init__.py").read_text() == untouched_hooks_init
    merged = service_test.read_text()
    assert merged.startswith(MARK), "the template's change of a generated file is missing"
    assert USER_SERVICE_TEST in merged, "the user's edit of a generated file is lost"
    assert _conflicted(project) == ["README.md"]
    readme = (project / "README.md").read_text()
    assert f"{CONFLICT_START}\n# Stock service (ours)\n" in readme
    assert f"# Stock service, template 0.3.0\n{CONFLICT_END}" in readme
    report = _project_checks(project)
    for name in (
        "test_reserved_sku_is_refused_and_nothing_written",
        "test_sku_is_trimmed",
        "test_after_hook_rolls_the_insert_back",
        "test_transition_guard",
        "test_our_route",
    ):
        assert f"PASSED tests/custom/test_rules.py::{name}" in report, report[-3000:]
    assert "PASSED tests/test_service.py::test_added_by_us" in report
