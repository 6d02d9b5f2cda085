"""The gateway sub-template (`kind: gateway`): rendered from the `gateway` answer that
`microforge blueprint` writes, its own linters, type checker and test suite (real upstream
servers on loopback), its Dockerfile and Helm chart checked by the real tools, and the gateway
running in front of a real generated service.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from generation import REPO, SPECS, clean_env, copier_copy, load_yaml, run

BIN = Path(sys.executable).parent
ANSWER: dict[str, Any] = {  # the contract's example answer
    "name": "gateway",
    "description": "API gateway of shop",
    "system": "shop",
    "routes": [
        {"prefix": "catalog", "service": "catalog", "auth": "optional"},
        {"prefix": "orders", "service": "order", "auth": "required"},
    ],
    "rate_limit": "600/minute",
    "auth": {"issuer": "identity"},
}


def render_gateway(dest: Path, answer: dict[str, Any]) -> Path:
    """Render like `copier copy --defaults -d kind=gateway --data-file gw.yml`."""
    import copier

    copier.run_copy(
        str(REPO),
        str(dest),
        data={"kind": "gateway", "gateway": answer},
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref="HEAD",
    )
    return dest


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = render_gateway(tmp_path_factory.mktemp("gw") / "gateway", ANSWER)
    run(project, "uv", "sync", "--quiet")
    return project


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_rendered_files_and_answers(gateway: Path) -> None:
    answers = yaml.safe_load((gateway / ".copier-answers.yml").read_text())
    assert answers["kind"] == "gateway"
    assert answers["gateway"] == ANSWER
    assert "spec" not in answers
    assert "gw" not in answers
    package = gateway / "src" / "gateway_service"
    assert (package / "proxy.py").is_file()
    assert not (package / "database.py").exists()
    assert not (gateway / "charts" / "gateway" / "templates" / "migration-job.yaml").exists()
    routes = (package / "routes.py").read_text()
    assert 'Route(prefix="orders", service="order", auth_required=True)' in routes
    settings = (package / "upstream_settings.py").read_text()
    assert "catalog_service_url" in settings
    assert "order_service_url" in settings
    assert "database_url" not in (package / "settings.py").read_text()


@pytest.mark.generated
def test_gateway_passes_its_own_checks(gateway: Path) -> None:
    run(gateway, "uv", "run", "ruff", "check", ".")
    run(gateway, "uv", "run", "ruff", "format", "--check", "--diff", ".")
    run(gateway, "uv", "run", "mypy")
    result = run(gateway, "uv", "run", "pytest", "-q", "-p", "no:cacheprovider")
    assert " passed" in result.stdout
    assert "skipped" not in result.stdout


def test_dockerfile_and_chart_pass_the_tools(gateway: Path, tmp_path: Path) -> None:
    hadolint = subprocess.run(
        [str(BIN / "hadolint"), str(gateway / "Dockerfile")], capture_output=True, text=True
    )
    assert hadolint.returncode == 0, hadolint.stdout + hadolint.stderr
    chart = gateway / "charts" / "gateway"
    production = yaml.safe_load((chart / "ci" / "production-values.yaml").read_text())
    for values in (None, production):
        report = helm.lint(str(chart), values, strict=True, namespace="shop")
        assert not report["errors"], report
        assert not [m for m in report["messages"] if m["severity"] >= 2], report
        files = helm.Chart.load(str(chart)).render(values, name="gateway", namespace="shop")
        docs = {
            (doc["kind"], doc["metadata"]["name"]): doc
            for name, text in files.items()
            if not name.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text)
            if doc
        }
        for (kind, name), doc in docs.items():
            (tmp_path / f"{kind}-{name}.yaml").write_text(yaml.safe_dump(doc))
        assert ("Job", "gateway-migrate") not in docs
        pod = docs["Deployment", "gateway"]["spec"]["template"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        server = pod["spec"]["containers"][0]
        assert server["command"][:3] == ["python", "-m", "gateway_service"]
        assert server["securityContext"]["readOnlyRootFilesystem"] is True
        # The routed services let the gateway in: its pods carry their client labels, and its
        # egress on port 8000 goes to them alone; default deny both ways.
        assert {k for k in pod["metadata"]["labels"] if "client-of" in k} == {
            "microforge.dev/client-of-catalog",
            "microforge.dev/client-of-order",
        }
        policy = docs["NetworkPolicy", "gateway"]["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        called = [r for r in policy["egress"] if any(p["port"] == 8000 for p in r["ports"])]
        selectors = [peer["podSelector"] for rule in called for peer in rule.get("to", [])]
        assert {
            "key": "app.kubernetes.io/name",
            "operator": "In",
            "values": ["catalog", "order"],
        } in [
            expression
            for selector in selectors
            for expression in selector.get("matchExpressions", [])
        ]
        assert 5432 not in {p["port"] for r in policy["egress"] for p in r["ports"]}
    validate = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", *map(str, tmp_path.glob("*.yaml"))],
        capture_output=True,
        text=True,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr


# In front of a real generated service -----------------------------------------------------------


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Answer:
    """One HTTP request with the standard library (error statuses are answers too)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


class Process:
    """A server started with `python -m <package> serve`, waited for on /health."""

    def __init__(self, project: Path, package: str, port: int, env: dict[str, str]) -> None:
        self.url = f"http://127.0.0.1:{port}"
        python = project / ".venv" / "bin" / "python"
        command = [str(python), "-m", package, "serve", "--port", str(port)]
        self.process = subprocess.Popen(
            command,
            cwd=project,
            env=clean_env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.process.stdout.read().decode() if self.process.stdout else ""
                self.stop()
                pytest.fail(f"{package} did not start:\n{output[-4000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def catalog(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    project = copier_copy(
        load_yaml(SPECS / "catalog.yaml"), tmp_path / "catalog", database="sqlite"
    )
    run(project, "uv", "sync", "--quiet", "--no-dev")
    env = {
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}",
        "AUTH_DEV_KEY_FILE": str(tmp_path / "dev-key.pem"),  # shared: the edge accepts its tokens
        "OTEL_SDK_DISABLED": "true",
        "LOG_FORMAT": "json",
        "SHUTDOWN_TIMEOUT": "2",  # the gateway keeps its connections to the service open
    }
    run(project, ".venv/bin/python", "-m", "catalog_service", "migrate", **env)
    return project, env


@pytest.mark.generated
def test_gateway_in_front_of_a_generated_service(
    gateway: Path, catalog: tuple[Path, dict[str, str]]
) -> None:
    project, env = catalog
    service = Process(project, "catalog_service", free_port(), env)
    edge = None
    try:
        token = run(
            project, ".venv/bin/python", "-m", "catalog_service", "dev-token", "--all-scopes", **env
        ).stdout.strip()
        edge = Process(
            gateway,
            "gateway_service",
            free_port(),
            {
                **env,
                "CATALOG_SERVICE_URL": service.url,
                "ORDER_SERVICE_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens
                "AUTH_AUDIENCE": "catalog",  # the service's development tokens
                "UPSTREAM_RETRIES": "0",
            },
        )
        bearer = {"Authorization": f"Bearer {token}"}
        base = edge.url
        listed = call(base, "GET", "/api/catalog/v1/product-categories")
        assert listed.status == 200, listed.body
        assert listed.json() == {"items": [], "next_cursor": None}
        # Scopes are the service's business: its 401 comes through the gateway.
        refused = call(base, "POST", "/api/catalog/v1/product-categories", {"name": "Books"})
        assert refused.status == 401
        assert refused.headers["content-type"] == "application/problem+json"
        created = call(
            base,
            "POST",
            "/api/catalog/v1/product-categories",
            {"name": "Books"},
            {**bearer, "X-Request-ID": "e2e-1"},
        )
        assert created.status == 201, created.body
        assert created.headers.get_all("x-request-id") == ["e2e-1"]
        location = created.headers["location"]
        assert location.startswith("/api/catalog/v1/product-categories/")
        fetched = call(base, "GET", location)
        assert fetched.status == 200
        assert fetched.json()["name"] == "Books"
        invalid = call(base, "POST", "/api/catalog/v1/product-categories", {}, bearer)
        assert invalid.status == 422
        assert invalid.json()["errors"][0]["field"] == "name"
        # One OpenAPI document: the service's paths under its prefix; order is down.
        document = call(base, "GET", "/openapi.json")
        assert document.headers["x-openapi-missing"] == "order"
        paths = document.json()["paths"]
        assert "/api/catalog/v1/product-categories" in paths
        assert all(path.startswith("/api/catalog/") for path in paths)
        assert "CategoryCreate" in document.json()["components"]["schemas"]
        # The order route: checked at the edge, then its service is down.
        assert call(base, "GET", "/api/orders/v1/orders").status == 401
        down = call(base, "GET", "/api/orders/v1/orders", headers=bearer)
        assert down.status == 503
        assert down.headers["content-type"] == "application/problem+json"
        assert int(down.headers["retry-after"]) >= 1
        # The catalog service killed: 503 problem+json too.
        service.stop()
        gone = call(base, "GET", "/api/catalog/v1/product-categories")
        assert gone.status == 503, gone.body
        assert gone.json()["service"] == "catalog"
        metrics = call(base, "GET", "/metrics").body.decode()
        assert 'route="/api/catalog/{path}"' in metrics
    finally:
        service.stop()
        if edge is not None:
            edge.stop()
