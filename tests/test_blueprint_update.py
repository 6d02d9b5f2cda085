"""`microforge update SYSTEM --blueprint NEW` after a blueprint change: an added service (with
an event it publishes, consumed by an existing service, and a gateway route) is generated, the
existing services, the gateway and the system files are regenerated from the new answers, and
the user's code is kept; the change is left uncommitted.

The system is generated from a snapshot of the template committed in a repository of its own
(as in tests/test_update.py): Copier renders the recorded commit again on update, which a
checkout with uncommitted changes could not give."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from blueprint_system import LIBRARY

from microforge.compose import compose_system, system_updates
from microforge.system import plan_system, read_blueprint
from microforge.update import update

TEMPLATE_PARTS = ("copier.yml", "template", "includes", "blueprints/system")

pytestmark = pytest.mark.generated

REVIEWS = """\
name: reviews
description: Members' reviews of the books they borrowed
entities:
  - name: Review
    fields:
      - {name: book_id, type: uuid, references: books.Book, required: true}
      - {name: rating, type: integer, min: 1, max: 5, required: true}
    events: [created]
events:
  consumes:
    - {event: loans.LoanClose, handler: invite_review}
depends_on:
  - {service: books, entity: Book, operations: [read]}
"""


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout


def _snapshot(dest: Path) -> Path:
    repo = Path(__file__).resolve().parents[1]
    for name in TEMPLATE_PARTS:
        source = repo / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-qm", "snapshot")
    return dest


def _update(system: Path, blueprint: Path, template: Path) -> Any:
    plan = plan_system(read_blueprint(blueprint, template), template)
    answers, create = system_updates(plan, system)
    return update(system, answers=answers, create=create)


def test_an_added_service_and_event_regenerate_the_system_and_keep_user_code(
    cli: Any, tmp_path: Path
) -> None:
    template = _snapshot(tmp_path / "template")
    system = tmp_path / "library"
    plan = plan_system(read_blueprint(LIBRARY, template), template)
    compose_system(plan, system, lock=False)
    hook = system / "loans/src/loans_service/hooks/loan.py"
    hook.write_text(hook.read_text() + "\n# the library's own note\n", encoding="utf-8")
    _git(system, "commit", "-qam", "our edit")
    blueprint = tmp_path / "bp"
    shutil.copytree(LIBRARY, blueprint)
    (blueprint / "specs/reviews.yaml").write_text(REVIEWS, encoding="utf-8")
    _replace(
        blueprint / "blueprint.yaml",
        "  - {spec: specs/loans.yaml, code: code/loans, database: sqlite}\n",
        "  - {spec: specs/loans.yaml, code: code/loans, database: sqlite}\n"
        "  - {spec: specs/reviews.yaml}\n",
    )
    _replace(
        blueprint / "blueprint.yaml",
        "    - {prefix: loans, service: loans, auth: required}\n",
        "    - {prefix: loans, service: loans, auth: required}\n"
        "    - {prefix: reviews, service: reviews}\n",
    )
    _replace(
        blueprint / "specs/members.yaml",
        "    - {event: loans.LoanCreated, handler: count_loan}\n",
        "    - {event: loans.LoanCreated, handler: count_loan}\n"
        "    - {event: reviews.ReviewCreated, handler: thank_reviewer}\n",
    )
    result = _update(system, blueprint, template)
    kinds = {project.path: project.kind for project in result.projects}
    assert kinds["reviews"] == "new project"
    assert kinds["members"] == "service"
    assert result.applied
    changed = _git(system, "status", "--porcelain", "--untracked-files=all")
    assert "?? reviews/.copier-answers.yml" in changed
    assert "?? members/src/members_service/handlers/thank_reviewer.py" in changed
    assert "?? compose/grafana/dashboards/reviews.json" in changed
    assert "loans/src/loans_service/hooks/loan.py" not in changed
    assert hook.read_text().endswith("# the library's own note\n")
    reviews = yaml.safe_load((system / "reviews/.copier-answers.yml").read_text())
    assert reviews["kind"] == "service"
    assert reviews["spec"]["name"] == "reviews"
    answers = yaml.safe_load((system / ".copier-answers.yml").read_text())["system"]
    assert [s["name"] for s in answers["services"]] == ["members", "books", "loans", "reviews"]
    assert {"from": "reviews", "to": "members", "event": "ReviewCreated"} in answers["events"]
    members = yaml.safe_load((system / "members/.copier-answers.yml").read_text())
    consumed = [c["event"] for c in members["spec"]["events"]["consumes"]]
    assert consumed == ["loans.LoanCreated", "reviews.ReviewCreated"]
    gateway = yaml.safe_load((system / "gateway/.copier-answers.yml").read_text())["gateway"]
    assert gateway["routes"][-1] == {"prefix": "reviews", "service": "reviews", "auth": "optional"}
    compose = yaml.safe_load((system / "compose.yaml").read_text())
    assert compose["services"]["reviews"]["ports"] == ["8004:8000"]
    readme = (system / "README.md").read_text()
    assert 'reviews -.->|"ReviewCreated"| members' in readme
    assert 'reviews -->|"read"| books' in readme
    _git(system, "add", "-A")
    _git(system, "commit", "-qm", "update")
    # the CLI refuses a blueprint for a single service, and a bad blueprint, changing nothing
    refused = cli("update", system / "books", "--blueprint", blueprint)
    assert refused.exit_code == 2
    assert "--blueprint updates a whole system" in refused.stderr
    _replace(blueprint / "specs/reviews.yaml", "books.Book, required", "book.Book, required")
    _replace(
        blueprint / "blueprint.yaml",
        "{prefix: reviews, service: reviews}",
        "{prefix: x, service: review}",
    )
    bad = cli("update", system, "--blueprint", blueprint)
    assert bad.exit_code == 2
    assert "gateway.routes[3].service: unknown service 'review'" in bad.stderr
    assert _git(system, "status", "--porcelain") == ""
