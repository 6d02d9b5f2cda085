"""The deployment artefacts of generated services, checked by the real tools: the Dockerfile
(hadolint, its COPY sources and CMD, its build steps replayed without Docker), the Helm chart
(helm lint and render for the default and the production-like values, kubernetes-validate
--strict on every manifest, checkov against the documented skip file, values.schema.json
refusing bad values) and the CI workflow (GitHub's workflow schema) with its Makefile.

Each case is generated once per module; checkov runs once over every rendered manifest.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from generation import EXAMPLE_SPEC, SPECS, clean_env, copier_copy, load_yaml

CHECKOV = "checkov==3.3.30"
NAMESPACE = "shop"
BIN = Path(sys.executable).parent

# spec, answers: the example specs over the option matrix (both databases, each Python version).
CASES: dict[str, tuple[Path, dict[str, str]]] = {
    "inventory": (EXAMPLE_SPEC, {}),
    "all-types-py313": (SPECS / "all_types.yaml", {"python_version": "3.13"}),
    "orders-sqlite-py312": (
        SPECS / "orders.yaml",
        {"database": "sqlite", "python_version": "3.12"},
    ),
    "minimal": (SPECS / "all_types.yaml", {}),  # replaced by MINIMAL: no events, no dependencies
}
MINIMAL = {
    "name": "notes",
    "entities": [{"name": "Note", "fields": [{"name": "body", "type": "text", "required": True}]}],
}
VALUES = ("default", "production")
# Custom resources: kubernetes-validate has no schema for them (it warns and passes).
CUSTOM_KINDS = {"ExternalSecret", "ServiceMonitor"}


@dataclass
class Project:
    name: str
    path: Path
    spec: dict[str, Any]
    database: str
    package: str = field(init=False)
    chart: Path = field(init=False)

    def __post_init__(self) -> None:
        self.package = self.spec["name"].replace("-", "_") + "_service"
        self.chart = self.path / "charts" / self.spec["name"]

    def values(self, which: str) -> dict[str, Any] | None:
        if which == "default":
            return None
        return yaml.safe_load((self.chart / "ci" / "production-values.yaml").read_text())


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Project]:
    root = tmp_path_factory.mktemp("deploy")
    made = {}
    for name, (spec_path, answers) in CASES.items():
        spec = MINIMAL if name == "minimal" else load_yaml(spec_path)
        if name == "all-types-py313":  # quotes, $, a backslash, non-ASCII, YAML and shell syntax
            spec["description"] = 'Every type: "50% off" costs $5 \\ ~ día #1 {{ x }} `id`'
        path = copier_copy(spec, root / name, **answers)
        made[name] = Project(name, path, spec, answers.get("database", "postgres"))
    return made


@pytest.fixture(scope="module")
def rendered(projects: dict[str, Project]) -> Path:
    """Every chart rendered with both values files where `make helm-template` and CI put them,
    <case>/rendered/<values>/<chart>/templates/...; returns the directory holding the cases."""
    for project in projects.values():
        chart = helm.Chart.load(str(project.chart))
        for which in VALUES:
            values = project.values(which)
            files = chart.render(values, name=project.spec["name"], namespace=NAMESPACE)
            for template, text in files.items():
                if template.endswith("NOTES.txt") or not text.strip():
                    continue
                target = project.path / "rendered" / which / template
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
    return next(iter(projects.values())).path.parent


def rendered_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/rendered/**/*.yaml"))


def documents(paths: list[Path]) -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path, document


def manifests(rendered: Path, case: str, which: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (doc["kind"], doc["metadata"]["name"]): doc
        for _, doc in documents(sorted((rendered / case / "rendered" / which).rglob("*.yaml")))
    }


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


# Dockerfile ----------------------------------------------------------------------------------


def dockerfile(project: Project) -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (project.path / "Dockerfile").read_text()
    logical, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    pairs = []
    for line in logical:
        instruction, _, arguments = line.strip().partition(" ")
        pairs.append((instruction.upper(), " ".join(arguments.split())))
    return pairs


def stages(project: Project) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction, arguments in dockerfile(project):
        if instruction == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction, arguments))
    return result


def docker_ignored(project: Project, relative: str) -> bool:
    """Whether .dockerignore keeps `relative` out of the build context (last match wins)."""
    ignored = False
    for raw in (project.path / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
            ignored = not negate
    return ignored


@pytest.mark.parametrize("case", CASES)
def test_hadolint_passes_without_a_warning(projects: dict[str, Project], case: str) -> None:
    project = projects[case]
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "Dockerfile"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip(), result.stdout


@pytest.mark.parametrize("case", CASES)
def test_dockerfile_copies_existing_paths_and_runs_the_package(
    projects: dict[str, Project], case: str
) -> None:
    project = projects[case]
    # uv.lock is made by `make lock` (or the first `uv run`) and committed; the build-steps test
    # below makes it for real (locking needs an interpreter of the project's Python version).
    makefile = (project.path / "Makefile").read_text()
    assert re.search(r"^uv\.lock: pyproject\.toml\n\tuv lock$", makefile, re.M)
    made_by_make = {"uv.lock"}
    builder, final = stages(project)
    copies = [args for instruction, args in builder + final if instruction == "COPY"]
    assert copies
    for arguments in copies:
        parts = arguments.split()
        if parts[0].startswith("--from="):
            assert parts[0] == "--from=builder", arguments
            continue
        for source in parts[:-1]:
            exists = (project.path / source).exists() or source in made_by_make
            assert exists, f"COPY {source}: not in the project"
            assert not docker_ignored(project, source), f"COPY {source}: excluded by .dockerignore"
    command = json.loads(dict(final)["CMD"])
    assert command == [
        "python",
        "-m",
        project.package,
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]
    assert (project.path / "src" / project.package / "__main__.py").is_file()
    user = dict(final)["USER"]
    assert re.fullmatch(r"1\d{4,}(:\d+)?", user), user  # a fixed, high UID (not root)
    assert "HEALTHCHECK" in dict(final)
    labels = dict(final)["LABEL"]
    for label in ("title", "description", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in labels


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_image_build_steps_give_a_service_that_migrates_serves_and_passes_its_healthcheck(
    projects: dict[str, Project], tmp_path: Path
) -> None:
    """The builder stage's `uv sync` steps replayed outside Docker on the build context, then the
    final image's commands (migrate, CMD, HEALTHCHECK) run from elsewhere: the installed wheel
    alone (no source tree) must be enough."""
    project = projects["inventory"]
    if not (project.path / "uv.lock").exists():
        subprocess.run(["uv", "lock", "--quiet"], cwd=project.path, env=clean_env(), check=True)
    builder, final = stages(project)
    context = tmp_path / "context"
    context.mkdir()
    venv = tmp_path / "venv"
    env = clean_env()
    for instruction, arguments in builder:
        if instruction == "ENV":
            for key, value in (item.split("=", 1) for item in shlex.split(arguments)):
                env[key] = value
    env.update(
        UV_PROJECT_ENVIRONMENT=str(venv),  # /app/.venv in the image
        UV_PYTHON=sys.executable if sys.version_info[:2] == (3, 11) else "3.11",
    )
    # Image-size and speed settings that change nothing the test looks at: faster without them.
    for setting in ("UV_PYTHON_DOWNLOADS", "UV_COMPILE_BYTECODE", "UV_LINK_MODE"):
        env.pop(setting, None)
    for instruction, arguments in builder:
        if instruction == "COPY":
            *sources, _ = arguments.split()
            for source in sources:
                origin = project.path / source
                if origin.is_dir():
                    shutil.copytree(
                        origin, context / source, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy2(origin, context / source)
        elif instruction == "RUN" and "uv sync" in arguments:
            words = [word for word in shlex.split(arguments) if not word.startswith("--mount=")]
            assert "--locked" in words
            assert "--no-dev" in words
            subprocess.run(
                words, cwd=context, env=env, check=True, timeout=600, capture_output=True
            )
    python = venv / "bin" / "python"
    runtime = clean_env(
        APP_ENV="test",  # production needs a real JWKS; the image's default is production
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'service.db'}",
        AUTH_DEV_KEY_FILE=str(tmp_path / "dev-key.pem"),
        OTEL_SDK_DISABLED="true",
    )
    workdir = tmp_path / "app"
    workdir.mkdir()
    subprocess.run(
        [str(python), "-m", project.package, "migrate"],
        cwd=workdir,
        env=runtime,
        check=True,
        timeout=120,
        capture_output=True,
    )
    port = str(free_port())
    command = json.loads(dict(final)["CMD"])
    command = [str(python), *command[1:-1], port]
    server = subprocess.Popen(
        command, cwd=workdir, env=runtime, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        healthcheck = json.loads(dict(final)["HEALTHCHECK"].split(" CMD ", 1)[1])
        healthcheck = [str(python), *[arg.replace("8000", port) for arg in healthcheck[1:]]]
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                healthcheck, env=runtime, capture_output=True, text=True, check=False
            )
            if probe.returncode == 0:
                break
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, probe.stderr
            time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as response:
            assert response.status == 200  # migrated tables, reachable database
    finally:
        server.terminate()
        server.wait(timeout=30)


# Helm chart ----------------------------------------------------------------------------------


@pytest.mark.parametrize("which", VALUES)
@pytest.mark.parametrize("case", CASES)
def test_helm_lint_is_clean(projects: dict[str, Project], case: str, which: str) -> None:
    project = projects[case]
    report = helm.lint(str(project.chart), project.values(which), strict=True, namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"], report
    assert not problems, report


def test_every_rendered_manifest_is_valid_kubernetes(rendered: Path) -> None:
    files = rendered_files(rendered)
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("INFO") and " passed " in line for line in lines) > 20
    for line in lines:
        if line.startswith("WARN"):
            match = re.search(r"for kind (\w+) ", line)
            assert match, line
            assert match[1] in CUSTOM_KINDS, line
        else:
            assert line.startswith("INFO"), line
            assert " passed " in line, line
    kinds = {doc["kind"] for _, doc in documents(files)}
    assert kinds >= CUSTOM_KINDS  # the production values turn them on


@pytest.mark.parametrize("case", CASES)
def test_rendered_chart_is_locked_down(
    projects: dict[str, Project], rendered: Path, case: str
) -> None:
    project = projects[case]
    name = project.spec["name"]
    postgres = project.database == "postgres"
    for which in VALUES:
        found = manifests(rendered, case, which)
        kinds = {kind for kind, _ in found}
        assert "Secret" not in kinds  # only references: no secret value ever rendered
        expected = {"Deployment", "Service", "ServiceAccount", "ConfigMap", "NetworkPolicy", "Job"}
        expected |= (
            {"HorizontalPodAutoscaler", "PodDisruptionBudget"}
            if postgres
            else {"PersistentVolumeClaim"}
        )
        if which == "production":
            expected |= {"Ingress", "ServiceMonitor", "ExternalSecret"}
        assert kinds == expected, (which, kinds)
        deployment = found["Deployment", name]["spec"]["template"]["spec"]
        assert deployment["automountServiceAccountToken"] is False
        assert deployment["securityContext"]["runAsNonRoot"] is True
        assert deployment["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        server = deployment["containers"][0]
        assert server["command"] == [
            "python",
            "-m",
            project.package,
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
        ]
        assert server["livenessProbe"]["httpGet"]["path"] == "/health"
        assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
        assert {"requests", "limits"} <= set(server["resources"])
        context = server["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in server["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]
        config = found["ConfigMap", name]["data"]
        secret_ref = [source["secretRef"] for source in server["envFrom"] if "secretRef" in source]
        assert secret_ref
        # the default SQLite service needs no Secret; the production values fill one
        assert secret_ref[0]["optional"] is (not postgres and which == "default")
        assert not [key for key in config if re.search("PASSWORD|SECRET|TOKEN", key)]
        if postgres:  # the database URL comes from the Secret; migrations from a hook Job
            assert "DATABASE_URL" not in config
            job = found["Job", f"{name}-migrate"]
            assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
            assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "migrate"
        else:  # SQLite: one file on the volume, migrated by an init container beside it
            assert config["DATABASE_URL"].startswith("sqlite+aiosqlite:////")
            data_path = (
                config["DATABASE_URL"].removeprefix("sqlite+aiosqlite:///").rsplit("/", 1)[0]
            )
            assert "persistentVolumeClaim" in volumes[mounts[data_path]]
            assert deployment["initContainers"][0]["command"][-1] == "migrate"
            assert found["Deployment", name]["spec"]["replicas"] == 1
        # the objects point at each other: Service and PDB select the server pods, HPA scales them
        pod_labels = found["Deployment", name]["spec"]["template"]["metadata"]["labels"]
        assert found["Service", name]["spec"]["selector"].items() <= pod_labels.items()
        assert found["Service", name]["spec"]["ports"][0]["targetPort"] == "http"
        if postgres:
            pdb = found["PodDisruptionBudget", name]["spec"]["selector"]["matchLabels"]
            assert pdb.items() <= pod_labels.items()
            assert found["HorizontalPodAutoscaler", name]["spec"]["scaleTargetRef"]["name"] == name
        if which == "production":  # the custom resources kubernetes-validate cannot check
            values = project.values(which)
            assert values is not None
            external = found["ExternalSecret", name]
            assert external["apiVersion"] == "external-secrets.io/v1"
            assert external["spec"]["target"]["name"] == secret_ref[0]["name"]
            assert external["spec"]["secretStoreRef"]["name"] == "vault"
            fetched = {item["secretKey"] for item in external["spec"]["data"]}
            assert fetched == set(values["secrets"]["externalSecret"]["data"])
            assert ("DATABASE_URL" in fetched) is postgres
            assert all(item["remoteRef"]["key"] for item in external["spec"]["data"])
            monitor = found["ServiceMonitor", name]
            assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
            assert monitor["spec"]["endpoints"][0]["port"] == "http"
            assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
            service_labels = found["Service", name]["metadata"]["labels"]
            assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
        policy = found["NetworkPolicy", name]["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        ports = {p["port"] for rule in policy["egress"] for p in rule.get("ports", [])}
        assert 53 in ports
        assert (5432 in ports) is postgres
        # the broker, for services that publish or consume events (they have BROKER_URL)
        spec = project.spec
        consumes = (spec.get("events") or {}).get("consumes")
        events_on = bool(consumes) or any(e.get("events") for e in spec["entities"])
        assert (4222 in ports) is events_on
        assert ("BROKER_URL" in config) is events_on
        # the services it calls let in the pods labelled as their clients, and only them
        callees = {d["service"] for d in project.spec.get("depends_on", [])}
        labels = found["Deployment", name]["spec"]["template"]["metadata"]["labels"]
        assert {k for k in labels if "client-of" in k} == {
            f"microforge.dev/client-of-{c}" for c in callees
        }
        called = [
            rule
            for rule in policy["egress"]
            if any(p["port"] == 8000 for p in rule["ports"])
            and rule.get("to")
            and "matchExpressions" in rule["to"][0].get("podSelector", {})
        ]
        assert bool(called) is bool(callees)
        peers = [peer for rule in policy["ingress"] for peer in rule["from"]]
        client_label = {f"microforge.dev/client-of-{name}": "true"}
        assert {"podSelector": {"matchLabels": client_label}} in peers
        assert all(rule.get("from") for rule in policy["ingress"])  # no open ingress rule


def skip_file(project: Project) -> dict[str, str]:
    """The checks .checkov.yaml skips, and the reason written beside each."""
    skips = {}
    inside = False
    for line in (project.path / ".checkov.yaml").read_text().splitlines():
        if line.startswith("skip-check:"):
            inside = True
        elif inside and line.startswith("  - "):
            check, _, reason = line[4:].partition("#")
            skips[check.strip()] = reason.strip()
        elif inside and line.strip():
            inside = False
    return skips


def test_checkov_fails_nothing_but_the_documented_skips(
    projects: dict[str, Project], rendered: Path
) -> None:
    """Checkov as `make checkov` runs it (the project's .checkov.yaml: frameworks, paths) over
    every case at once: the rendered chart, the Dockerfile and the CI workflow."""
    uv = shutil.which("uv")
    assert uv, "uv must be on PATH (checkov runs in its own environment through `uv tool run`)"
    config_file = projects["inventory"].path / ".checkov.yaml"
    config = yaml.safe_load(config_file.read_text())
    assert set(config["framework"]) == {"kubernetes", "dockerfile", "github_actions"}
    skips = skip_file(projects["inventory"])
    assert sorted(skips) == sorted(config["skip-check"])
    for check, reason in skips.items():
        assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check), check
        assert len(reason) > 40, (check, reason)
    for project in projects.values():
        assert skip_file(project) == skips
    # The skips overridden (`--skip-check ""`): every failure must be one of them, and each of
    # them must still fail somewhere (a skip that no longer matters is removed).
    command = [uv, "tool", "run", "--from", CHECKOV, "checkov", "--config-file", str(config_file)]
    command += ["--skip-check", "", "--directory", str(rendered), "--skip-download"]
    command += ["--compact", "--output", "json"]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, check=False, env=clean_env()
    )
    assert result.returncode in {0, 1}, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    reports = {r["check_type"]: r for r in (report if isinstance(report, list) else [report])}
    assert set(reports) == set(config["framework"])
    for check_type, part in reports.items():
        assert part["summary"]["passed"] > 100, (check_type, part["summary"])
        assert not part["summary"]["parsing_errors"], (check_type, part["summary"])
    # the rendered manifests, the Dockerfiles and the workflows; not the templates under charts/
    checks = [
        c
        for r in reports.values()
        for key in ("passed_checks", "failed_checks")
        for c in r["results"][key]
    ]
    scanned = {c["file_path"].split("/", 2)[2] for c in checks}  # /<case>/<path in the project>
    assert {path.split("/")[0] for path in scanned} == {"rendered", "Dockerfile", ".github"}
    assert len({c["file_path"].split("/")[1] for c in checks}) == len(projects)
    assert reports["dockerfile"]["summary"]["resource_count"] == len(projects)
    failed = [check for r in reports.values() for check in r["results"]["failed_checks"]]
    unexpected = [
        (c["check_id"], c["check_name"], c["resource"], c["file_path"])
        for c in failed
        if c["check_id"] not in skips
    ]
    assert not unexpected, unexpected
    assert {c["check_id"] for c in failed} == set(skips)


BAD_VALUES: dict[str, dict[str, Any]] = {
    "replicas-as-text": {"replicaCount": "two"},
    "unknown-key": {"replicas": 3},
    "database-url-in-config": {"config": {"DATABASE_URL": "postgresql+asyncpg://u:p@db/x"}},
    "password-in-config": {"config": {"REDIS_PASSWORD": "hunter2"}},
    "bad-log-level": {"config": {"LOG_LEVEL": "LOUD"}},
    "jwks-not-a-url": {"config": {"AUTH_JWKS_URL": "jwks.json"}},
    "privilege-escalation": {"securityContext": {"allowPrivilegeEscalation": True}},
    "root": {"podSecurityContext": {"runAsNonRoot": False}},
    "writable-root-filesystem": {"securityContext": {"readOnlyRootFilesystem": False}},
    "capability-added": {
        "securityContext": {"capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]}}
    },
    "capabilities-kept": {"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}},
    "no-seccomp": {"securityContext": {"seccompProfile": {"type": "Unconfined"}}},
    "digest-not-sha256": {"image": {"digest": "latest"}},
    "external-secret-without-store": {"secrets": {"externalSecret": {"enabled": True}}},
    "ingress-without-hosts": {"ingress": {"enabled": True, "hosts": []}},
    "egress-port-out-of-range": {"networkPolicy": {"egress": {"broker": {"ports": [70000]}}}},
}


@pytest.mark.parametrize("values", BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_values_schema_rejects_bad_values(
    projects: dict[str, Project], values: dict[str, Any]
) -> None:
    chart = helm.Chart.load(str(projects["inventory"].chart))
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name="inventory", namespace=NAMESPACE)


def test_values_schema_accepts_good_overrides_and_sqlite_stays_single(
    projects: dict[str, Project],
) -> None:
    chart = helm.Chart.load(str(projects["inventory"].chart))
    good = {"replicaCount": 4, "config": {"MY_FEATURE_FLAG": "on"}, "image": {"tag": "1.2.3"}}
    files = chart.render(good, name="inventory", namespace=NAMESPACE)
    assert "MY_FEATURE_FLAG" in files["inventory/templates/configmap.yaml"]
    sqlite = helm.Chart.load(str(projects["orders-sqlite-py312"].chart))
    with pytest.raises(helm.HelmValuesError):
        sqlite.render({"replicaCount": 2}, name="orders", namespace=NAMESPACE)


# CI workflow and Makefile --------------------------------------------------------------------


def test_ci_workflows_and_dependabot_match_their_github_schemas(
    projects: dict[str, Project],
) -> None:
    workflows = [str(p.path / ".github" / "workflows" / "ci.yml") for p in projects.values()]
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *workflows],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    updates = [str(p.path / ".github" / "dependabot.yml") for p in projects.values()]
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.dependabot", *updates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    ecosystems = {
        u["package-ecosystem"] for u in yaml.safe_load(Path(updates[0]).read_text())["updates"]
    }
    assert ecosystems == {"uv", "docker", "github-actions"}


@pytest.mark.parametrize("case", CASES)
def test_ci_workflow_runs_every_check(projects: dict[str, Project], case: str) -> None:
    project = projects[case]
    workflow = project.path / ".github" / "workflows" / "ci.yml"
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    assert set(jobs) == {"lint", "types", "test", "contract", "hadolint", "helm", "docker"}
    steps = {
        name: "\n".join(str(step.get("run", "")) for step in job["steps"])
        for name, job in jobs.items()
    }
    assert "ruff check" in steps["lint"]
    assert "ruff format --check" in steps["lint"]
    assert "mypy" in steps["types"]
    assert ("postgres" in jobs["test"].get("services", {})) is (project.database == "postgres")
    assert "pytest -ra tests/contract" in steps["contract"]
    upload = next(s for s in jobs["contract"]["steps"] if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "pacts/"
    assert upload["with"]["if-no-files-found"] == "ignore"
    assert "hadolint Dockerfile" in steps["hadolint"]
    for command in (
        "helm lint --strict",
        "helm template",
        "production-values.yaml",
        "kubernetes-validate",
        "checkov",
    ):
        assert command in steps["helm"], command
    build = next(s for s in jobs["docker"]["steps"] if "build-push-action" in s.get("uses", ""))
    assert build["with"]["push"] == "${{ startsWith(github.ref, 'refs/tags/') }}"
    assert build["with"]["cache-from"] == "type=gha"
    assert set(jobs["docker"]["needs"]) == set(jobs) - {"docker"}
    checkouts = [
        s for job in jobs.values() for s in job["steps"] if "checkout" in s.get("uses", "")
    ]
    assert len(checkouts) == len(jobs)
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("case", CASES)
def test_makefile_runs_the_same_steps(projects: dict[str, Project], case: str) -> None:
    project = projects[case]
    result = subprocess.run(
        ["make", "--dry-run", "--always-make", "ci", "docker-build"],
        cwd=project.path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert result.returncode == 0, result.stderr
    for command in (
        "ruff check",
        "ruff format --check",
        "mypy",
        "pytest",
        "pytest tests/contract",
        "hadolint Dockerfile",
        "helm lint --strict",
        "helm template",
        "kubernetes-validate",
        "checkov --config-file .checkov.yaml",
        "docker build",
    ):
        assert command in result.stdout, command
