"""The generated services' OpenAPI documents as client generators see them.

For the inventory example (SQLite; states, decimal, enum, ref, pattern) and the every-type spec:
`python -m <pkg> openapi` writes `openapi.json`, which the generated test then checks against the
app; openapi-spec-validator accepts it; openapi-python-client generates a client with no warning;
openapi-typescript's types pass `tsc --noEmit` with the operation names. The inventory client then
drives the served service. The tools are installed from this repository's files: the validator
from the dev group, openapi-python-client with `uv tool run` at a pinned version, the npm tools
with `npm ci` from openapi_tools/package-lock.json into a cache directory. A test whose tool cannot
be installed is skipped and says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from generation import EXAMPLE_SPEC, SPECS, clean_env, copier_copy, load_yaml, npm_tools, run

TOOLS = Path(__file__).parent / "openapi_tools"
PYTHON_CLIENT = "openapi-python-client==0.29.1"
SPEC_CASES = {"inventory": EXAMPLE_SPEC, "kitchen-sink": SPECS / "all_types.yaml"}

pytestmark = pytest.mark.generated


def _package(spec: dict[str, Any]) -> str:
    return str(spec["name"]).replace("-", "_") + "_service"


def _package_of(project: Path) -> str:
    return next(path.name for path in (project / "src").iterdir() if path.is_dir())


def _shared(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A directory that `build` fills once per test run, whichever xdist worker asks first (a
    module fixture would be built again by each worker that runs one of this module's tests)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by the workers of this run
    target = root / f"openapi-{name}"
    with (root / f"openapi-{name}.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (target / ".built").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            (target / ".built").touch()
    return target


def _build_services(root: Path) -> None:
    for name, path in SPEC_CASES.items():
        spec = load_yaml(path)
        project = copier_copy(spec, root / name, database="sqlite")
        run(project, "uv", "sync", "--quiet")
        assert not (project / "openapi.json").exists()
        written = run(project, "uv", "run", "--no-sync", "python", "-m", _package(spec), "openapi")
        assert "openapi.json written" in written.stdout


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated projects (SQLite), each with the `openapi.json` its own command wrote."""
    root = _shared(tmp_path_factory, "services", _build_services)
    return {name: root / name for name in SPEC_CASES}


def _document(project: Path) -> dict[str, Any]:
    return dict(json.loads((project / "openapi.json").read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", sorted(SPEC_CASES))
def test_document_is_valid_and_named_for_clients(services: dict[str, Path], name: str) -> None:
    from openapi_spec_validator import validate

    text = (services[name] / "openapi.json").read_text(encoding="utf-8")
    document = json.loads(text)
    validate(document)
    assert text == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    schemas = document["components"]["schemas"]
    assert not [name for name in schemas if "_" in name or "-" in name], sorted(schemas)
    for item in document["paths"].values():
        for operation in item.values():
            assert len(operation["tags"]) == 1, operation["operationId"]
    for schema_name, schema in schemas.items():
        if schema_name.endswith(("Create", "Update")):
            assert schema["examples"], schema_name


def test_committed_document_is_checked_by_the_generated_test(services: dict[str, Path]) -> None:
    report = run(
        services["inventory"],
        "uv",
        "run",
        "--no-sync",
        "pytest",
        "-q",
        "-rA",
        "tests/test_openapi.py",
    )
    for test in ("test_committed_document_is_the_apps", "test_request_bodies_have_valid_examples"):
        assert f"PASSED tests/test_openapi.py::{test}" in report.stdout, report.stdout


def _python_client_tool(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a command of openapi-python-client's environment (`uv tool run`, pinned version)."""
    return subprocess.run(
        ["uv", "tool", "run", "--from", PYTHON_CLIENT, *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def python_clients(
    services: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The client package openapi-python-client generated for each service."""
    version = _python_client_tool("openapi-python-client", "--version", cwd=Path.cwd())
    if version.returncode != 0:
        pytest.skip(f"{PYTHON_CLIENT} cannot be installed with uv: {version.stderr[-500:]}")

    def build(root: Path) -> None:
        for name, project in services.items():
            output = root / name / f"{_package_of(project)[:-8]}_client"
            output.parent.mkdir()
            result = _python_client_tool(
                "openapi-python-client",
                "generate",
                "--path",
                str(project / "openapi.json"),
                "--output-path",
                str(output),
                "--meta",
                "none",
                cwd=output.parent,
            )
            said = result.stdout + result.stderr
            assert result.returncode == 0, said
            assert "warning" not in said.lower(), said  # e.g. "Invalid property in union"

    root = _shared(tmp_path_factory, "python-clients", build)
    return {
        name: root / name / f"{_package_of(project)[:-8]}_client"
        for name, project in services.items()
    }


@pytest.mark.parametrize("name", sorted(SPEC_CASES))
def test_python_client_methods_and_errors_are_typed(
    services: dict[str, Path], python_clients: dict[str, Path], name: str
) -> None:
    client = python_clients[name]
    for item in _document(services[name])["paths"].values():
        for operation in item.values():
            tag = operation["tags"][0].lower()
            assert (client / "api" / tag / f"{operation['operationId']}.py").is_file()
    assert "class Problem:" in (client / "models" / "problem.py").read_text()
    for create in (client / "api").glob("*/*_create.py"):
        text = create.read_text()
        for status in (409, 422, 429):
            assert f"response_{status} = Problem.from_dict(response.json())" in text, create


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SERVE = """
import sys
from {package}.__main__ import dev_token, migrate, serve
from {package}.security import SCOPES

migrate()
print(dev_token(SCOPES, "client-check", 600), flush=True)
serve("127.0.0.1", int(sys.argv[1]), 1, False)
"""


@contextlib.contextmanager
def _served(project: Path, package: str, workdir: Path) -> Iterator[tuple[str, str]]:
    """The service migrated and served (one process) on a free port and a scratch SQLite
    database: its URL and a development token granting every scope."""
    env = clean_env(
        APP_ENV="development",
        DATABASE_URL=f"sqlite+aiosqlite:///{workdir / 'served.db'}",
        AUTH_DEV_KEY_FILE=str(workdir / "dev-key.pem"),
        RATE_LIMIT_DEFAULT="off",
    )
    port = _free_port()
    command = ["uv", "run", "--no-sync", "python", "-c", SERVE.format(package=package), str(port)]
    with (workdir / "serve.log").open("w") as log:
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            assert process.stdout is not None
            token = process.stdout.readline().strip()
            assert token, (workdir / "serve.log").read_text()[-3000:]
            deadline = time.monotonic() + 60
            while not _ready(url):
                assert process.poll() is None, (workdir / "serve.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"{url} not ready within 60 s"
                time.sleep(0.2)
            yield url, token
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ready", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_generated_python_client_drives_the_served_service(
    services: dict[str, Path], python_clients: dict[str, Path], tmp_path: Path
) -> None:
    with _served(services["inventory"], "inventory_service", tmp_path) as (url, token):
        result = _python_client_tool(
            "python",
            str(TOOLS / "python_client_check.py"),
            url,
            token,
            cwd=tmp_path,
            PYTHONPATH=str(python_clients["inventory"].parent),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {
        "read": "Tools",
        "listed": ["Toys"],
        "status": "DISCONTINUED",
        "discontinued": True,
        "refused": [422, 422],
        "refused_fields": ["price", "sku"],
        "missing": [404, 404, "Not Found"],
    }


def _npm_tools() -> Path:
    """openapi-typescript and typescript installed with `npm ci` from the committed lock, once
    per lock in the user's cache directory (a file lock serializes parallel test workers)."""
    files = ("package-lock.json", "package.json")
    without = "the TypeScript client cannot be checked"
    home = npm_tools(TOOLS, files, "openapi", "node_modules/.bin/tsc", without)
    return home / "node_modules" / ".bin"


def test_typescript_types_compile_with_the_operation_names(
    services: dict[str, Path], tmp_path: Path
) -> None:
    bin_dir = _npm_tools()
    checks = []
    for name, project in sorted(services.items()):
        module = name.replace("-", "_")
        generated = subprocess.run(
            [str(bin_dir / "openapi-typescript"), str(project / "openapi.json")],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert generated.returncode == 0, generated.stdout + generated.stderr
        (tmp_path / f"{module}.ts").write_text(generated.stdout, encoding="utf-8")
        paths = _document(project)["paths"].values()
        ids = sorted(operation["operationId"] for item in paths for operation in item.values())
        create = next(op_id for op_id in ids if op_id.endswith("_create"))
        read = next(op_id for op_id in ids if op_id.endswith("_read"))
        lines = [f'import type {{ components, operations }} from "./{module}";', ""]
        lines += [f'export type Op{n} = operations["{op_id}"];' for n, op_id in enumerate(ids)]
        lines += [
            "// @ts-expect-error: names that are not operations are refused",
            'export type NotAnOperation = operations["no_such_operation"];',
            f'type Refused = operations["{create}"]["responses"][422]["content"]'
            '["application/problem+json"];',
            f'type Missing = operations["{read}"]["responses"][404]["content"]'
            '["application/problem+json"];',
            'export const problem: components["schemas"]["Problem"] = {',
            "  type: 'about:blank',",
            "  title: 'Unprocessable Content',",
            "  status: 422,",
            "  detail: null,",
            "  instance: '/v1/things',",
            "  errors: [{ field: 'name', location: 'body', message: 'too long', type: 'long' }],",
            "};",
            "export const refused: Refused = problem;",
            "export const missing: Missing = { ...problem, status: 404, errors: null };",
            "",
        ]
        (tmp_path / f"check_{module}.ts").write_text("\n".join(lines), encoding="utf-8")
        checks.append(f"check_{module}.ts")
    checked = subprocess.run(
        [
            str(bin_dir / "tsc"),
            "--noEmit",
            "--strict",
            "--target",
            "es2022",
            "--module",
            "esnext",
            "--moduleResolution",
            "bundler",
            *checks,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
