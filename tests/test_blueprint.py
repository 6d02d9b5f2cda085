"""`microforge blueprint` and blueprint validation: bad blueprints are refused with positions
(exit 2, nothing written); the library blueprint (tests/blueprints/library) is generated once
per session and its system files checked (answers, overlays, compose against the compose-spec
schema and the Compose binary, the Mermaid graph and its parse by Mermaid's own parser, the
gateway and system answers).

The generated services' own suites run in tests/test_blueprint_generated.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from blueprint_system import LIBRARY, check_compose, generated_library
from mermaid_check import mermaid_blocks, parse_diagrams

from microforge.blueprint import blueprint_json_schema
from microforge.system import plan_system, read_blueprint

SERVICES = ("members", "books", "loans")


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_library(tmp_path_factory)


def _copy_blueprint(tmp_path: Path) -> Path:
    target = tmp_path / "bp"
    shutil.copytree(LIBRARY, target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


BAD = [
    pytest.param(
        "blueprint.yaml",
        "broker: nats",
        "broker: natss",
        r"blueprint\.yaml:\d+:9: broker: unknown broker 'natss'; allowed: nats, rabbitmq, "
        r"redis, kafka; did you mean 'nats'\?",
        id="unknown-broker",
    ),
    pytest.param(
        "blueprint.yaml",
        "{prefix: books, service: books}",
        "{prefix: books, service: book}",
        r"blueprint\.yaml:\d+:\d+: gateway\.routes\[1\]\.service: unknown service 'book'; "
        r"the blueprint's services are: members, books, loans; did you mean 'books'\?",
        id="route-to-unknown-service",
    ),
    pytest.param(
        "blueprint.yaml",
        "{prefix: loans, service: loans, auth: required}",
        "{prefix: books, service: loans, auth: required}",
        r"gateway\.routes\[2\]\.prefix: duplicate prefix 'books'",
        id="duplicate-prefix",
    ),
    pytest.param(
        "blueprint.yaml",
        "auth: {issuer: members}",
        "auth: {issuer: member}",
        r"blueprint\.yaml:10:\d+: auth\.issuer: unknown service 'member'.*did you mean "
        r"'members'\?",
        id="unknown-issuer",
    ),
    pytest.param(
        "blueprint.yaml",
        "  - {spec: specs/loans.yaml, code: code/loans, database: sqlite}",
        "  - {spec: specs/loans.yaml, code: code/loans, database: sqlite}\n"
        "  - {spec: specs/books.yaml}",
        r"services\[3\]\.spec: service 'books' is already named by services\[1\]",
        id="duplicate-service",
    ),
    pytest.param(
        "blueprint.yaml",
        "{spec: specs/members.yaml}",
        "{spec: specs/member.yaml}",
        r"blueprint\.yaml:7:\d+: services\[0\]\.spec: cannot read the spec .*member\.yaml: "
        r"no such file",
        id="missing-spec",
    ),
    pytest.param(
        "specs/loans.yaml",
        "{service: books, entity: Book, operations: [read]}",
        "{service: books, entity: Bok, operations: [read]}",
        r"loans\.yaml:\d+:\d+: depends_on\[0\]\.entity: service 'books' has no entity 'Bok'; "
        r"its entities: Book; did you mean 'Book'\?",
        id="unknown-entity",
    ),
    pytest.param(
        "specs/members.yaml",
        "events:\n  consumes:",
        "depends_on:\n  - {service: loans, entity: Loan, operations: [read, delete]}\n"
        "events:\n  consumes:",
        r"members\.yaml:\d+:\d+: depends_on\[0\]\.operations\[1\]: 'loans\.Loan' does not "
        r"offer 'delete'; it offers: create, read, list, close",
        id="operation-not-offered",
    ),
    pytest.param(
        "specs/loans.yaml",
        "{service: members, entity: Member, operations: [read]}",
        "{service: member, entity: Member, operations: [read]}",
        r"depends_on\[1\]\.service: unknown service 'member'",
        id="dependency-on-unknown-service",
    ),
    pytest.param(
        "specs/books.yaml",
        "{event: loans.LoanClose, handler: return_copy}",
        "{event: loans.LoanClosed, handler: return_copy}",
        r"books\.yaml:\d+:\d+: events\.consumes\[1\]\.event: service 'loans' does not publish "
        r"'LoanClosed'; it publishes: LoanCreated, LoanClose; did you mean 'LoanClose'\?",
        id="event-not-published",
    ),
    pytest.param(
        "specs/members.yaml",
        "events:\n  consumes:",
        "depends_on:\n  - {service: loans, entity: Loan, operations: [read]}\nevents:\n  consumes:",
        r"synchronous calls form a cycle: (members -> loans -> members|loans -> members -> loans)",
        id="call-cycle",
    ),
    pytest.param(
        "specs/books.yaml",
        "      - {name: copies, type: integer, min: 0, default: 1}",
        "      - {name: copies, type: integr, min: 0, default: 1}",
        r"books\.yaml:\d+:\d+: entities\[0\]\.fields\[2\]\.type: unknown field type 'integr'",
        id="spec-error-in-a-named-spec",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "expected"), BAD)
def test_a_bad_blueprint_is_refused_with_positions_and_nothing_is_written(
    cli: Any, tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    blueprint = _copy_blueprint(tmp_path)
    _edit(blueprint / file, old, new)
    dest = tmp_path / "out"
    validated = cli("validate", blueprint / "blueprint.yaml")
    assert validated.exit_code == 2, validated.stdout
    assert re.search(expected, validated.stderr), validated.stderr
    result = cli("blueprint", blueprint, "-o", dest, "--no-lock")
    assert result.exit_code == 2
    assert re.search(expected, result.stderr), result.stderr
    assert "nothing was written" in result.stderr
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bp"]


def test_an_overlay_file_the_user_does_not_own_is_refused(cli: Any, tmp_path: Path) -> None:
    blueprint = _copy_blueprint(tmp_path)
    stray = blueprint / "code" / "loans" / "src" / "loans_service" / "app.py"
    stray.write_text("print('generated files are not yours')\n", encoding="utf-8")
    wrong = blueprint / "code" / "loans" / "src" / "books_service" / "hooks" / "book.py"
    wrong.parent.mkdir(parents=True)
    wrong.write_text('"""misplaced"""\n', encoding="utf-8")
    result = cli("blueprint", blueprint, "-o", tmp_path / "out", "--no-lock")
    assert result.exit_code == 2
    assert "services[2].code:" in result.stderr
    assert "loans_service/app.py: not a file the service's owner owns" in result.stderr
    assert "the service's package is loans_service, not books_service" in result.stderr
    assert not (tmp_path / "out").exists()


def test_validate_summarises_a_valid_blueprint(cli: Any) -> None:
    result = cli("validate", LIBRARY)
    assert result.exit_code == 0, result.stderr
    assert "system library: 3 services" in result.stdout
    assert "gateway gateway (3 routes)" in result.stdout


def test_schema_of_the_blueprint_validates_the_library(cli: Any) -> None:
    import jsonschema

    result = cli("schema", "--blueprint")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(blueprint_json_schema()))
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(yaml.safe_load((LIBRARY / "blueprint.yaml").read_text()))
    assert not validator.is_valid({"name": "x", "services": [], "broker": "mqtt"})


def test_the_system_answer_follows_the_graph() -> None:
    plan = plan_system(read_blueprint(LIBRARY))
    answer = plan.answers
    assert [s["name"] for s in answer["services"]] == list(SERVICES)
    assert [s["port"] for s in answer["services"]] == [8001, 8002, 8003]
    loans = answer["services"][2]
    assert loans["database"] == "sqlite"
    assert loans["env"] == "LOANS"
    assert loans["calls"] == ["books", "members"]
    assert loans["publishes"] == ["LoanCreated", "LoanClose"]
    assert answer["calls"] == [
        {"from": "loans", "to": "books", "operations": ["read"], "saga": False},
        {"from": "loans", "to": "members", "operations": ["read"], "saga": False},
    ]
    assert {(e["from"], e["to"], e["event"]) for e in answer["events"]} == {
        ("loans", "members", "LoanCreated"),
        ("loans", "books", "LoanCreated"),
        ("loans", "books", "LoanClose"),
        ("books", "loans", "BookWithdraw"),
    }
    assert answer["gateway"]["routes"][0] == {
        "prefix": "members",
        "service": "members",
        "auth": "required",
    }
    assert answer["auth_issuer"] == "members"
    assert plan.gateway is not None
    assert plan.gateway.data["gateway"]["auth"] == {"issuer": "members"}


def test_the_system_is_one_commit_of_copier_projects(cli: Any, library: Path) -> None:
    again = cli("blueprint", LIBRARY, "-o", library, "--no-lock")
    assert again.exit_code == 2
    assert "is not empty: microforge blueprint writes a new system" in again.stderr
    log = subprocess.run(
        ["git", "log", "--oneline"], cwd=library, capture_output=True, text=True, check=True
    )
    assert len(log.stdout.splitlines()) == 1
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=library, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""
    root = yaml.safe_load((library / ".copier-answers.yml").read_text())
    assert root["kind"] == "system"
    assert root["system"]["name"] == "library"
    for name in SERVICES:
        answers = yaml.safe_load((library / name / ".copier-answers.yml").read_text())
        assert answers["kind"] == "service"
        assert answers["spec"]["name"] == name
    assert (
        yaml.safe_load((library / "loans" / ".copier-answers.yml").read_text())["database"]
        == "sqlite"
    )
    gateway = yaml.safe_load((library / "gateway" / ".copier-answers.yml").read_text())
    assert gateway["kind"] == "gateway"
    assert [r["prefix"] for r in gateway["gateway"]["routes"]] == ["members", "books", "loans"]
    assert not list(library.parent.glob(".microforge-staging-*"))


def test_the_code_overlay_replaces_the_user_owned_files(library: Path) -> None:
    overlay = LIBRARY / "code"
    for relative in (
        "loans/src/loans_service/hooks/loan.py",
        "loans/tests/custom/test_loan_rules.py",
        "books/src/books_service/handlers/lend_copy.py",
    ):
        assert (library / relative).read_text() == (overlay / relative).read_text()
    # the other user-owned files are the template's
    assert (
        "def return_copy("
        in (library / "books/src/books_service/handlers/return_copy.py").read_text()
    )


def test_compose_passes_the_schema_and_the_compose_binary(library: Path) -> None:
    compose = library / "compose.yaml"
    document = check_compose(library)
    services = document["services"]
    for name in SERVICES:
        app = services[name]
        assert services[f"{name}-migrate"]["command"][-1] == "migrate"
        assert app["depends_on"][f"{name}-migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert app["depends_on"]["nats"] == {"condition": "service_healthy"}
        assert "healthcheck" in app
    assert services["loans"]["environment"]["DATABASE_URL"].startswith("sqlite+aiosqlite:")
    assert "postgres:5432/books" in services["books"]["environment"]["DATABASE_URL"]
    assert services["loans"]["environment"]["BOOKS_SERVICE_URL"] == "http://books:8000"
    assert services["gateway"]["environment"]["LOANS_SERVICE_URL"] == "http://loans:8000"
    assert {"postgres", "nats", "redis", "otel-collector", "jaeger", "prometheus", "grafana"} <= (
        set(services)
    )
    init = (library / "compose/postgres/init.sql").read_text()
    assert 'CREATE DATABASE "members";' in init
    assert 'CREATE DATABASE "books";' in init
    assert "loans" not in init
    text = compose.read_text()
    assert "change-me" not in text  # secrets come from .env
    assert "POSTGRES_PASSWORD=" in (library / ".env.example").read_text()
    assert ".env" in (library / ".gitignore").read_text().splitlines()
    prometheus = yaml.safe_load((library / "compose/prometheus.yml").read_text())
    jobs = {job["job_name"] for job in prometheus["scrape_configs"]}
    assert jobs == {*SERVICES, "gateway"}
    for name in SERVICES:
        dashboard = json.loads((library / f"compose/grafana/dashboards/{name}.json").read_text())
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        assert f'http_requests_total{{job="{name}"' in exprs
        assert "sagas_finished_total" in exprs
        assert "events_consumed_total" in exprs


def _mermaid(readme: str) -> list[str]:
    blocks = re.findall(r"```mermaid\n(.*?)```", readme, re.DOTALL)
    assert len(blocks) == 1
    lines = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    assert lines[0] == "flowchart LR"
    return lines[1:]


NODE = r"[A-Za-z_][A-Za-z0-9_]*"
EDGE = re.compile(rf'^({NODE}) (-->|==>|-\.->|---)(?:\|"([^"]*)"\|)? ({NODE})$')
SHAPE = re.compile(rf"^({NODE})(\[[^\]]+\]|\{{\{{[^}}]+\}}\}}|\(\[[^\]]+\]\))$")


def test_the_readme_diagram_has_every_service_call_and_event(library: Path) -> None:
    lines = _mermaid((library / "README.md").read_text())
    nodes: set[str] = set()
    edges: set[tuple[str, str, str, str]] = set()
    for line in lines:
        edge = EDGE.match(line)
        shape = SHAPE.match(line)
        assert edge or shape, f"not a Mermaid node or edge: {line!r}"
        if edge:
            source, arrow, label, target = edge.groups()
            edges.add((source, arrow, label or "", target))
            nodes.update((source, target))
        else:
            nodes.add(shape.group(1) if shape else "")
    assert {*SERVICES, "gateway", "client"} <= nodes
    for name in SERVICES:
        assert (
            "gateway",
            "-->",
            f"/api/{name}" + (" (auth)" if name != "books" else ""),
            name,
        ) in (edges)
        assert (name, "---", "", f"{name}_db") in edges
    assert ("loans", "-->", "read", "books") in edges
    assert ("loans", "-->", "read", "members") in edges
    events = {(s, label, t) for s, arrow, label, t in edges if arrow == "-.->"}
    assert events == {
        ("loans", "LoanCreated", "members"),
        ("loans", "LoanCreated", "books"),
        ("loans", "LoanClose", "books"),
        ("books", "BookWithdraw", "loans"),
    }
    readme = (library / "README.md").read_text()
    for needle in (
        "microforge run .",
        "docker compose up",
        "kubectl apply -k",
        "helm upgrade",
        "http://localhost:8080",
        "one database per service",
    ):
        assert needle in readme


def test_the_readme_diagram_parses_as_mermaid(library: Path, tmp_path: Path) -> None:
    """Mermaid's own parser (npm `mermaid` under jsdom) accepts the README's diagram."""
    (diagram,) = mermaid_blocks((library / "README.md").read_text())
    verdicts = parse_diagrams(tmp_path, {"readme": diagram})
    assert verdicts["readme"] == {"ok": True, "type": "flowchart-v2"}, verdicts["readme"]


def test_system_ci_workflow_and_locustfile(library: Path) -> None:
    check = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(library / ".github/workflows/ci.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    workflow = yaml.safe_load((library / ".github/workflows/ci.yml").read_text())
    assert workflow["jobs"]["project"]["strategy"]["matrix"]["project"] == [*SERVICES, "gateway"]
    assert "make contracts" in json.dumps(workflow["jobs"]["contracts"])
    makefile = (library / "Makefile").read_text()
    for target in ("contracts:", "k8s-validate:", "helm-lint:", "compose-config:"):
        assert target in makefile
    locust = (library / "locust/locustfile.py").read_text()
    compile(locust, "locustfile.py", "exec")
    assert '("lend", "POST", "/api/loans/v1/loans")' in locust
