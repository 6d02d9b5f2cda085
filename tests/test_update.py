"""`microforge update` and the generated `makemigrations`: spec changes become code and a *new*
Alembic revision, data survives the migration, losses are refused, dry runs write nothing, and
whole systems update service by service, stopping at the first conflict.

The template is snapshotted into its own git repository first: Copier records the commit a
project was made from and renders that commit again on update, which a checkout with
uncommitted changes (a draft commit only Copier's clone knows) could not give.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CliInvoker
from generation import POSTGRES_URL, REPO, SPECS, clean_env, load_yaml, postgres_answers, run

from microforge import update as updater

TEMPLATE_PARTS = ("copier.yml", "includes", "template")
IDENTITY = ("-c", "user.name=microforge tests", "-c", "user.email=tests@localhost")
SQL = """
import asyncio, json, sys
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

async def main(url, statements):
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    out = []
    try:
        async with engine.connect() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
                rows = [[str(v) for v in row] for row in result] if result.returns_rows else None
                out.append(rows)
    finally:
        await engine.dispose()
    print(json.dumps(out))

asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
"""


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *IDENTITY, *args], cwd=repo, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)} in {repo}: {done.stderr}"
    return done.stdout


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)


def snapshot_template(dest: Path) -> Path:
    """This checkout's template (working tree as it is) committed in a repository of its own."""
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in TEMPLATE_PARTS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=ignore)
        else:
            shutil.copy2(source, dest / name)
    git(dest, "init", "-q")
    commit_all(dest, "template snapshot")
    return dest


def copier_copy(template: Path, spec: dict[str, Any], dest: Path) -> None:
    import copier

    copier.run_copy(
        str(template), str(dest), data={"spec": spec}, defaults=True, unsafe=False, quiet=True
    )


def clone(repo: Path, dest: Path) -> Path:
    git(repo.parent, "clone", "-q", str(repo), str(dest))
    return dest


def fingerprint(root: Path) -> dict[str, str]:
    """Every file outside .git and ignored caches, with a hash of its content."""
    listed = git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return {
        name: hashlib.sha256((root / name).read_bytes()).hexdigest()
        for name in listed.split("\0")
        if name and (root / name).is_file()
    }


def sql(project: Path, url: str, *statements: str) -> list[Any]:
    """Run SQL statements with the project's own environment (its drivers); rows as strings."""
    done = run(project, "uv", "run", "--quiet", "python", "-c", SQL, url, json.dumps(statements))
    result: list[Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def orders_spec() -> dict[str, Any]:
    spec: dict[str, Any] = load_yaml(SPECS / "orders.yaml")
    return spec


def grown_spec() -> dict[str, Any]:
    """orders + an entity, two fields (one non-nullable with a default), an enum value and a
    transition to it."""
    spec = copy.deepcopy(orders_spec())
    order = spec["entities"][1]
    order["fields"][2]["values"].append("REFUNDED")
    order["fields"].append({"name": "priority", "type": "integer", "min": -10, "default": 1})
    order["fields"].append({"name": "note", "type": "string", "max_length": 80})
    order["states"]["transitions"].append(
        {"name": "refund", "from": ["PAID", "SHIPPED"], "to": "REFUNDED"}
    )
    spec["entities"].append(
        {
            "name": "Shipment",
            "fields": [
                {"name": "order_id", "type": "ref", "to": "Order", "required": True},
                {"name": "carrier", "type": "string", "max_length": 40, "required": True},
            ],
        }
    )
    return spec


def shrunk_spec() -> dict[str, Any]:
    """The grown spec without `placed_at` and with `number` narrowed from 20 to 12 characters."""
    spec = grown_spec()
    order = spec["entities"][1]
    order["fields"] = [f for f in order["fields"] if f["name"] != "placed_at"]
    order["fields"][0]["max_length"] = 12
    return spec


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return snapshot_template(tmp_path_factory.mktemp("update") / "template")


@pytest.fixture(scope="module")
def system(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the orders service (as generated, committed)."""
    root = tmp_path_factory.mktemp("update") / "system"
    root.mkdir()
    git(root, "init", "-q")
    copier_copy(template, orders_spec(), root / "orders")
    commit_all(root, "orders service")
    return root


@pytest.fixture
def database(tmp_path: Path, system: Path) -> Iterator[str]:
    """A fresh PostgreSQL database when the server answers, else a SQLite file."""
    if not postgres_answers():
        yield f"sqlite+aiosqlite:///{tmp_path / 'orders.db'}"
        return
    name = f"update_{uuid.uuid4().hex[:12]}"
    project = system / "orders"
    sql(project, POSTGRES_URL, f'CREATE DATABASE "{name}"')
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    sql(project, POSTGRES_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(project: Path, url: str) -> None:
    run(
        project,
        "uv",
        "run",
        "--quiet",
        "python",
        "-m",
        "orders_service",
        "migrate",
        DATABASE_URL=url,
    )


CUSTOMER = "0190f0c1a2b37c4d8e9f0a1b2c3d4e5f"
ORDER = "0190f0c1a2b37c4d8e9f0a1b2c3d4e60"


@pytest.mark.generated
def test_spec_changes_become_new_migrations_and_keep_the_data(
    system: Path, database: str, tmp_path: Path, cli: CliInvoker
) -> None:
    root = clone(system, tmp_path / "system")
    service = root / "orders"
    versions = service / "src" / "orders_service" / "migrations" / "versions"
    initial = (versions / "0001_initial.py").read_bytes()
    migrate(service, database)
    sql(
        service,
        database,
        "INSERT INTO customers (id, email, display_name, created_at, updated_at, version) "
        f"VALUES ('{CUSTOMER}', 'ann@example.com', 'Ann', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1)",
        "INSERT INTO orders (id, number, customer_id, status, total, created_at, updated_at, "
        f"version) VALUES ('{ORDER}', 'A-1', '{CUSTOMER}', 'PAID', 12.5, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP, 1)",
    )

    # --dry-run shows the diff (code and migration) and writes nothing
    grown = write_spec(tmp_path / "grown.yaml", grown_spec())
    before = fingerprint(root)
    shown = cli("update", service, "--spec", grown, "--dry-run")
    assert shown.exit_code == 0, shown.stderr
    assert "diff --git a/orders/src/orders_service/models/order.py" in shown.stdout
    assert "+++ b/orders/src/orders_service/migrations/versions/0002_" in shown.stdout
    assert "REFUNDED" in shown.stdout
    assert "Dry run: nothing was written" in shown.stdout
    assert fingerprint(root) == before
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""

    # the update: new entity, fields, enum value and transition -> code and revision 0002
    result = updater.update(service, spec=grown_spec())
    assert result.applied
    (project,) = result.projects
    assert project.migration == "src/orders_service/migrations/versions/0002_microforge_update.py"
    assert (versions / "0001_initial.py").read_bytes() == initial  # never rewritten
    revision = (service / project.migration).read_text()
    assert 'down_revision: str | None = "0001"' in revision
    assert 'op.create_table(\n        "shipments"' in revision
    assert "REFUNDED" in revision
    assert '.values({"priority": 1})' in revision  # rows that exist get the default
    assert "def refund" in (service / "src" / "orders_service" / "api" / "order.py").read_text()
    assert load_yaml(service / ".copier-answers.yml")["spec"] == grown_spec()

    migrate(service, database)
    rows = sql(
        service,
        database,
        "SELECT number, status, priority, note FROM orders",
        "SELECT count(*) FROM shipments",
    )
    assert rows == [[["A-1", "PAID", "1", "None"]], [["0"]]]
    sql(service, database, f"UPDATE orders SET status = 'REFUNDED' WHERE id = '{ORDER}'")
    with pytest.raises(AssertionError, match="ck_orders_status_enum"):
        sql(service, database, f"UPDATE orders SET status = 'LOST' WHERE id = '{ORDER}'")

    # the updated project is clean and its own tests (drift check included) pass
    written = [name.removeprefix("orders/") for name in project.changed if name.endswith(".py")]
    run(service, "uv", "run", "ruff", "check", *written)
    run(service, "uv", "run", "ruff", "format", "--check", *written)
    run(service, "uv", "run", "mypy")
    # on PostgreSQL when it answers: the drift check there compares its own spelling of the
    # CHECK constraints (a negative bound comes back quoted) with the models'
    server = {"TEST_DATABASE_URL": POSTGRES_URL} if database.startswith("postgresql") else {}
    tests = ("tests/test_migrations.py", "tests/test_order.py", "tests/test_shipment.py")
    run(service, "uv", "run", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests, **server)
    commit_all(root, "grown")

    # dropping a column and narrowing a type lose data: refused, the directory untouched
    before = fingerprint(root)
    head = git(root, "rev-parse", "HEAD")
    shrunk = write_spec(tmp_path / "shrunk.yaml", shrunk_spec())
    said = cli("update", service, "--spec", shrunk)
    assert said.exit_code == 1
    assert "orders: refused, the schema change loses data:" in said.stderr
    assert "column orders.placed_at would be dropped" in said.stderr
    assert "column orders.number would narrow from VARCHAR(20) to VARCHAR(12)" in said.stderr
    assert "--allow-destructive" in said.stderr
    assert fingerprint(root) == before
    assert git(root, "rev-parse", "HEAD") == head
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""

    # allowed: revision 0003 drops and narrows; the row is still there
    result = updater.update(service, spec=shrunk_spec(), allow_destructive=True)
    (project,) = result.projects
    assert project.migration is not None
    assert project.migration.endswith("0003_microforge_update.py")
    revision = (service / project.migration).read_text()
    assert 'batch_op.drop_column("placed_at")' in revision
    assert (versions / "0001_initial.py").read_bytes() == initial
    migrate(service, database)
    assert sql(service, database, "SELECT number, status FROM orders") == [[["A-1", "REFUNDED"]]]


@pytest.mark.generated
def test_plain_copier_update_then_makemigrations(system: Path, tmp_path: Path) -> None:
    """`copier update --data-file` alone: the drift test fails and says to run makemigrations,
    which writes the revision that makes it pass."""
    root = clone(system, tmp_path / "system")
    service = root / "orders"
    data = write_spec(tmp_path / "data.yml", {"spec": grown_spec()})
    run(
        service,
        sys.executable,
        "-m",
        "copier",
        "update",
        "--defaults",
        "--conflict",
        "inline",
        "--data-file",
        str(data),
        "--vcs-ref",
        "HEAD",
        ".",
    )
    drift = subprocess.run(
        ["uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_migrations.py"],
        cwd=service,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert drift.returncode == 1, drift.stdout
    assert "run `uv run python -m orders_service makemigrations" in drift.stdout
    made = run(
        service, "uv", "run", "python", "-m", "orders_service", "makemigrations", "-m", "grow"
    )
    assert "0002_grow.py" in made.stdout
    run(service, "uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_migrations.py")
    again = run(service, "uv", "run", "python", "-m", "orders_service", "makemigrations")
    assert "No changes in the models: no migration written." in again.stdout


SYSTEM_COPIER = """\
_answers_file: .copier-answers.system.yml
title:
  type: str
  default: shop
"""


def system_template(dest: Path) -> Path:
    """A small Copier template of system-level files (a compose file)."""
    dest.mkdir(parents=True)
    (dest / "copier.yml").write_text(SYSTEM_COPIER)
    (dest / "{{ _copier_conf.answers_file }}.jinja").write_text(
        "{{ _copier_answers | to_nice_yaml -}}\n"
    )
    (dest / "compose.yaml.jinja").write_text("name: {{ title }}\nservices: {}\n")
    git(dest, "init", "-q")
    commit_all(dest, "system template")
    return dest


NOTES_SPEC = {
    "name": "notes",
    "entities": [{"name": "Note", "fields": [{"name": "title", "type": "string"}]}],
}


@pytest.mark.generated
def test_system_update_every_service_and_stop_at_first_conflict(tmp_path: Path) -> None:
    template = snapshot_template(tmp_path / "template")
    systems = system_template(tmp_path / "system-template")
    base = tmp_path / "shop"
    base.mkdir()
    git(base, "init", "-q")
    (base / ".gitignore").write_text("notes/\n")  # notes has a repository of its own
    copier_copy(template, NOTES_SPEC, base / "notes")
    git(base / "notes", "init", "-q")
    commit_all(base / "notes", "notes service")
    copier_copy(template, orders_spec(), base / "orders")
    import copier

    copier.run_copy(str(systems), str(base), defaults=True, unsafe=False, quiet=True)
    commit_all(base, "shop")
    # the templates move on
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + "\nTemplate line added for the update test.\n")
    commit_all(template, "README line")
    compose = systems / "compose.yaml.jinja"
    compose.write_text(compose.read_text() + "volumes: {}\n")
    commit_all(systems, "volumes")

    shop = tmp_path / "shop-a"
    shutil.copytree(base, shop, symlinks=True)
    result = updater.update(shop)
    assert [(p.path, p.kind) for p in result.projects] == [
        ("notes", "service"),
        ("orders", "service"),
        (".", "system files"),
    ]
    assert all(p.migration is None for p in result.projects)  # no model changed
    assert result.projects[0].changed == ("notes/.copier-answers.yml", "notes/README.md")
    assert "diff --git a/notes/README.md b/notes/README.md" in result.diff
    assert git(shop / "notes", "status", "--porcelain") == " M .copier-answers.yml\n M README.md\n"
    changed = git(shop, "status", "--porcelain").split("\n")
    assert " M orders/README.md" in changed
    assert " M compose.yaml" in changed
    assert (shop / "compose.yaml").read_text().endswith("volumes: {}\n")
    assert (shop / "orders" / "README.md").read_text().endswith("added for the update test.\n")

    # a conflict in the second service: nothing applied, not even the first service
    shop = tmp_path / "shop-b"
    shutil.copytree(base, shop, symlinks=True)
    mine = shop / "orders" / "README.md"
    mine.write_text(mine.read_text() + "\nMy own closing words.\n")
    commit_all(shop, "my README")
    before = fingerprint(shop)
    notes_before = fingerprint(shop / "notes")
    with pytest.raises(updater.ConflictError) as conflict:
        updater.update(shop)
    assert conflict.value.project == "orders"
    assert conflict.value.files == ("orders/README.md",)
    assert "copier update --conflict inline" in str(conflict.value)
    assert fingerprint(shop) == before
    assert fingerprint(shop / "notes") == notes_before  # updated in its clone only
    assert git(shop, "status", "--porcelain", "--untracked-files=no") == ""


def test_update_refuses_bad_targets(system: Path, tmp_path: Path, cli: CliInvoker) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    said = cli("update", loose)
    assert said.exit_code == 2
    assert "is neither a Copier project (no .copier-answers.yml) nor a system" in said.stderr
    shutil.copy2(system / "orders" / ".copier-answers.yml", loose)
    said = cli("update", loose)
    assert said.exit_code == 2
    assert "is not in a git repository" in said.stderr
    root = clone(system, tmp_path / "system")
    spec = write_spec(tmp_path / "spec.yaml", orders_spec())
    said = cli("update", root, "--spec", spec)
    assert said.exit_code == 2
    assert "--spec updates one service" in said.stderr
    renamed = write_spec(tmp_path / "renamed.yaml", {**orders_spec(), "name": "purchases"})
    said = cli("update", root / "orders", "--spec", renamed)
    assert said.exit_code == 2
    assert "renaming a service is not an update" in said.stderr
    (root / "orders" / "README.md").write_text("edited\n")
    said = cli("update", root / "orders")
    assert said.exit_code == 2
    assert "uncommitted changes: commit or stash them first" in said.stderr
