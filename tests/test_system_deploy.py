"""The deployment files of a generated system (blueprints/system: k8s/, charts/, scripts/,
compose.yaml), checked by the real tools on two systems: the small one of tests/systems/market.yaml
and the e-commerce shop of blueprints/ecommerce (the session's `ecommerce_system`, generated once
by `microforge blueprint --no-lock`; the checks read it and write elsewhere).

The system template is rendered with Copier (kind: system) where `microforge blueprint` puts it,
next to the generated charts of its services and gateway (so the umbrella chart's file references
resolve) or, for the contracts, next to whole generated projects of a consumer and its provider
(whose own Pact tests the script runs). Checked:
`kubectl kustomize` of every overlay, with and without the istio component, passes
`kubernetes-validate --strict`; the NetworkPolicies (kustomize and Helm) allow exactly the
graph's edges, computed from the manifests by a small policy evaluator; the umbrella chart lints
and renders through the Helm SDK; `scripts/contracts.py` prints an all-green matrix and turns red
when the provider breaks its API (market only: it runs generated projects' suites); compose.yaml
passes the compose-spec schema and `docker-compose config -q` and wires the graph; the README's
diagram parses with Mermaid's own parser (tests/mermaid_check.py).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from blueprint_system import check_compose
from generation import REPO, SPECS, clean_env, copier_copy, load_yaml
from mermaid_check import mermaid_blocks, parse_diagrams

pytestmark = pytest.mark.generated

FIXTURE = REPO / "tests" / "systems" / "market.yaml"
BIN = Path(sys.executable).parent
OVERLAYS = ("dev", "prod", "dev-istio", "prod-istio")
# The services' specs: tests/specs where one fits, else a one-entity spec of that name.
SPEC_FILES = {"catalog": SPECS / "catalog.yaml", "cart": SPECS / "cart.yaml"}


def one_entity_spec(name: str, entity: str) -> dict[str, Any]:
    fields = [{"name": "label", "type": "string", "max_length": 80, "required": True}]
    return {
        "name": name,
        "description": f"The {name} service",
        "entities": [{"name": entity, "fields": fields}],
    }


def tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else name


def kubectl() -> str:
    found = shutil.which("kubectl")
    if not found:
        pytest.skip("kubectl is not installed on this machine (it is not on PyPI): no kustomize")
    return found


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render_system(system: dict[str, Any], dest: Path) -> Path:
    """The system template rendered like `microforge blueprint` renders it (kind: system)."""
    import copier

    copier.run_copy(
        str(REPO),
        str(dest),
        data={"kind": "system", "system": system},
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref="HEAD",
    )
    return dest


def gateway_answer(system: dict[str, Any]) -> dict[str, Any]:
    """The `gateway` answer microforge writes for the system's gateway (SYSTEM_CONTRACT.md)."""
    g = system["gateway"]
    return {
        "name": g["name"],
        "description": f"API gateway of {system['name']}",
        "system": system["name"],
        "routes": g["routes"],
        "rate_limit": g["rate_limit"],
        "auth": {"issuer": system["auth_issuer"]} if system["auth_issuer"] else None,
    }


@dataclass
class System:
    """A rendered system: its directory and its `system` answer."""

    root: Path
    model: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return [s["name"] for s in self.model["services"]]

    @property
    def gateway(self) -> str:
        name: str = self.model["gateway"]["name"]
        return name

    @property
    def workloads(self) -> set[str]:
        """The services, and the gateway if the system has one."""
        gateway = self.model["gateway"]
        return {*self.names, *([gateway["name"]] if gateway else [])}


def copy_charts(data: dict[str, Any], dest: Path) -> Path:
    """Only the charts/ of a project (a third of a whole project's rendering time)."""
    import copier

    copier.run_copy(
        str(REPO),
        str(dest),
        data=data,
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref="HEAD",
        exclude=["*", "!charts/", "!charts/**"],
    )
    return dest


def spec_of(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = (
        load_yaml(SPEC_FILES[name]) if name in SPEC_FILES else one_entity_spec(name, "User")
    )
    return spec


def render_market(factory: pytest.TempPathFactory) -> System:
    """The market system rendered, with the charts of its services and gateway where
    `microforge blueprint` puts their projects (the rest of a project is not needed here)."""
    model = load_yaml(FIXTURE)
    root = render_system(model, factory.mktemp("system") / model["name"])
    system = System(root, model)
    for service in model["services"]:
        data = {"spec": spec_of(service["name"]), "database": service["database"]}
        copy_charts(data, root / service["name"])
    gateway = {"kind": "gateway", "gateway": gateway_answer(model)}
    copy_charts(gateway, root / system.gateway)
    chart = root / system.gateway / "charts" / system.gateway
    if not (chart / "Chart.yaml").is_file():
        # The gateway sub-template does not ship its chart yet: a service chart of that name
        # (the gateway's chart is the service chart without a database) stands in for it.
        spec = one_entity_spec(system.gateway, "Route")
        copy_charts({"spec": spec, "database": "sqlite"}, root / system.gateway)
    return system


def generated(root: Path) -> System:
    """A system written by `microforge blueprint`: its `system` answer from its answers file."""
    answers = load_yaml(root / ".copier-answers.yml")
    return System(root, answers["system"])


@pytest.fixture(scope="module", params=["market", "shop"])
def system(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> System:
    """market: the system template rendered from tests/systems/market.yaml; shop: the
    e-commerce system as `microforge blueprint` generated it (shared, read-only)."""
    if request.param == "market":
        return render_market(tmp_path_factory)
    root: Path = request.getfixturevalue("ecommerce_system")
    return generated(root)


# The NetworkPolicy evaluator ---------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A pod somewhere in the cluster: its name in the graph, namespace, labels, ports."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    ports: tuple[int, ...]

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def endpoint(name: str, namespace: str, labels: dict[str, str], *ports: int) -> Endpoint:
    return Endpoint(name, namespace, tuple(sorted(labels.items())), ports)


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against labels."""
    if selector is None:
        return True
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values")
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def peer_matches(peer: dict[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.namespace == "" and other.name == "internet"
    if not other.namespace:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector"), other.label_map)


def rule_allows(rule: dict[str, Any], key: str, namespace: str, other: Endpoint, port: int) -> bool:
    peers = rule.get(key)
    if peers and not any(peer_matches(p, namespace, other) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(
        p.get("port") in {port, "http" if port == 8000 else None} for p in ports
    )


def allowed(
    policies: list[dict[str, Any]], namespace: str, endpoints: list[Endpoint]
) -> set[tuple[str, str, int]]:
    """Every (from, to, port) the policies of `namespace` let through (pods outside it are not
    governed by them), between distinct endpoints."""

    def side(pod: Endpoint, kind: str, key: str, other: Endpoint, port: int) -> bool:
        if pod.namespace != namespace:
            return True
        governing = [
            p
            for p in policies
            if kind in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], pod.label_map)
        ]
        if not governing:
            return True
        return any(
            rule_allows(rule, key, namespace, other, port)
            for p in governing
            for rule in p["spec"].get(kind.lower()) or []
        )

    pairs = set()
    for source in endpoints:
        for target in endpoints:
            if source.name == target.name or namespace not in {source.namespace, target.namespace}:
                continue
            for port in target.ports:
                if side(source, "Egress", "to", target, port) and side(
                    target, "Ingress", "from", source, port
                ):
                    pairs.add((source.name, target.name, port))
    return pairs


def cluster(system: System, namespace: str, manifests: list[dict[str, Any]]) -> list[Endpoint]:
    """The system's pods (from the manifests' pod templates) and everything around them,
    wanted or not: the databases of every service, the broker, other brokers, DNS, the
    collector, Prometheus, the edge, istiod, a stranger in the namespace and one outside."""
    pods: dict[str, Endpoint] = {}
    # a service's pods are its Deployment's (its migration Job's pods, which call nobody and
    # lack the client-of labels, only stand in for a workload without a Deployment)
    for doc in sorted(manifests, key=lambda d: d["kind"] != "Deployment"):
        if doc["kind"] in {"Deployment", "Job"}:
            labels = doc["spec"]["template"]["metadata"]["labels"]
            name = labels["app.kubernetes.io/name"]
            pods.setdefault(name, endpoint(name, namespace, labels, 8000, 15020))
    assert set(pods) == system.workloads
    around = [
        *(
            endpoint(f"{n}-db", namespace, {"app.kubernetes.io/name": f"{n}-db"}, 5432)
            for n in system.names
        ),
        endpoint("nats", namespace, {"app.kubernetes.io/name": "nats"}, 4222),
        endpoint("rabbitmq", namespace, {"app.kubernetes.io/name": "rabbitmq"}, 5672),
        endpoint("redis", namespace, {"app.kubernetes.io/name": "redis"}, 6379),
        endpoint("stranger", namespace, {"app.kubernetes.io/name": "stranger"}, 8000),
        endpoint("dns", "kube-system", {"k8s-app": "kube-dns"}, 53),
        endpoint("collector", "observability", {"app.kubernetes.io/name": "otel-collector"}, 4318),
        endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"}, 9090),
        endpoint("edge", "gateway-system", {"app": "envoy"}, 443),
        endpoint("istiod", "istio-system", {"app": "istiod"}, 15012),
        endpoint("outsider", "default", {"app.kubernetes.io/name": "catalog"}, 8000),
        endpoint("internet", "", {}, 443),
    ]
    return [*pods.values(), *around]


def graph_pairs(system: System, istio: bool = False) -> set[tuple[str, str, int]]:
    """The (from, to, port) pairs the blueprint's graph calls for, and nothing else."""
    model = system.model
    workloads = system.workloads
    pairs = set()
    if model["gateway"]:
        pairs.add(("edge", system.gateway, 8000))
        for route in model["gateway"]["routes"]:
            pairs.add((system.gateway, route["service"], 8000))
    for call in model["calls"]:
        pairs.add((call["from"], call["to"], 8000))
    issuer = model["auth_issuer"]
    for w in workloads:
        pairs |= {(w, "dns", 53), (w, "collector", 4318), ("prometheus", w, 8000)}
        if issuer and w != issuer:
            pairs.add((w, issuer, 8000))
        if not issuer:
            pairs.add((w, "internet", 443))
        if istio:
            pairs.add(("prometheus", w, 15020))
    ports = {"nats": 4222, "rabbitmq": 5672, "redis": 6379}
    broker = model["broker"]
    for s in model["services"]:
        if s["database"] == "postgres":
            pairs |= {(s["name"], f"{s['name']}-db", 5432), (f"{s['name']}-db", "dns", 53)}
        if s["publishes"] or s["consumes"]:
            pairs |= {(s["name"], broker, ports[broker]), (broker, "dns", 53)}
    return pairs


# kustomize ---------------------------------------------------------------------------------


def build(system: System, overlay: str | Path) -> str:
    """`kubectl kustomize` of an overlay of the system (a name) or of a directory."""
    where = overlay if isinstance(overlay, Path) else system.root / "k8s" / "overlays" / overlay
    result = subprocess.run(
        [kubectl(), "kustomize", str(where)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def validate(files: list[Path]) -> None:
    """kubernetes-validate --strict on every manifest (custom resources: no schema, a warning)."""
    result = subprocess.run(
        [tool("kubernetes-validate"), "--strict", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "ERROR" not in result.stdout + result.stderr


@pytest.fixture(scope="module")
def overlays(
    system: System, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[dict[str, Any]]]:
    """Every overlay built by `kubectl kustomize` (and the ingress component on prod), validated
    strictly in one run; the manifests per overlay."""
    out = tmp_path_factory.mktemp("built")
    # prod with the Ingress component: an overlay of our own, outside the (shared) system
    ingress = tmp_path_factory.mktemp("overlay") / "prod-ingress"
    ingress.mkdir()
    k8s = os.path.relpath(system.root / "k8s", ingress)
    (ingress / "kustomization.yaml").write_text(
        f"resources: [{k8s}/overlays/prod]\ncomponents: [{k8s}/components/ingress]\n"
    )
    built = {}
    for overlay in (*OVERLAYS, "prod-ingress"):
        text = build(system, overlay if overlay != "prod-ingress" else ingress)
        (out / f"{overlay}.yaml").write_text(text)
        built[overlay] = documents(text)
    validate(sorted(out.glob("*.yaml")))
    return built


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests if d["kind"] == kind}


def pod_specs(manifests: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in manifests:
        if doc["kind"] in {"Deployment", "Job"}:
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]


def test_overlays_build_and_validate(
    system: System, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    """Each overlay has every workload of the graph with its probes, restricted security
    context, settings and Secret reference; prod adds autoscalers, budgets and ExternalSecrets;
    the istio overlays a VirtualService and DestinationRule per service."""
    model = system.model
    workloads = {*system.names, system.gateway}
    postgres = {s["name"] for s in model["services"] if s["database"] == "postgres"}
    for overlay, manifests in overlays.items():
        assert set(by_kind(manifests, "Deployment")) == workloads, overlay
        assert set(by_kind(manifests, "Service")) == workloads, overlay
        assert set(by_kind(manifests, "Job")) == {f"{n}-migrate" for n in postgres}, overlay
        assert set(by_kind(manifests, "PersistentVolumeClaim")) == {
            f"{n}-data" for n in set(system.names) - postgres
        }
        namespace = by_kind(manifests, "Namespace")[model["name"]]
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        assert all(
            d["metadata"].get("namespace", model["name"]) == model["name"] for d in manifests
        )
        for where, pod in pod_specs(manifests):
            assert pod["automountServiceAccountToken"] is False, where
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert pod["securityContext"]["runAsUser"] == 10001, where
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes["tmp"], where
            for container in pod.get("initContainers", []) + pod["containers"]:
                context = container["securityContext"]
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["capabilities"] == {"drop": ["ALL"]}, where
                assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], where
                references = container["envFrom"]
                name = where.split("/")[1].removesuffix("-migrate")
                assert references[0] == {"configMapRef": {"name": f"{name}-config"}}
                assert references[1]["secretRef"]["name"] == f"{name}-secrets"
                assert references[1]["secretRef"]["optional"] is (name not in postgres)
                tag = container["image"].rsplit(":", 1)[1]
                assert tag == ("dev" if overlay.startswith("dev") else "0.1.0"), container["image"]
        for name, deployment in by_kind(manifests, "Deployment").items():
            server = deployment["spec"]["template"]["spec"]["containers"][0]
            assert server["readinessProbe"]["httpGet"]["path"] == "/ready"
            assert server["livenessProbe"]["httpGet"]["path"] == "/health"
            package = name.replace("-", "_") + "_service"
            assert server["command"][:4] == ["python", "-m", package, "serve"]
            if name in postgres:
                job = by_kind(manifests, "Job")[f"{name}-migrate"]
                command = job["spec"]["template"]["spec"]["containers"][0]["command"]
                assert command == ["python", "-m", package, "migrate"]
        # The settings each service reads, from the graph.
        configs = by_kind(manifests, "ConfigMap")
        for s in model["services"]:
            data = configs[f"{s['name']}-config"]["data"]
            assert (
                data["AUTH_JWKS_URL"] == f"http://{model['auth_issuer']}:8000/.well-known/jwks.json"
            )
            assert data["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector.")
            assert ("BROKER_URL" in data) is bool(s["publishes"] or s["consumes"])
            urls = {k for k in data if k.endswith("_SERVICE_URL")}
            assert urls == {f"{c.upper().replace('-', '_')}_SERVICE_URL" for c in s["calls"]}
            assert data.get("DATABASE_URL", "sqlite").startswith("sqlite")  # never a server URL
        gateway = configs[f"{system.gateway}-config"]["data"]
        routed = {r["service"] for r in model["gateway"]["routes"]}
        assert {k for k in gateway if k.endswith("_SERVICE_URL")} == {
            f"{r.upper()}_SERVICE_URL" for r in routed
        }
        # The way in, the production extras, the mesh.
        if overlay == "prod-ingress":
            assert not by_kind(manifests, "HTTPRoute")
            ingress = by_kind(manifests, "Ingress")[system.gateway]
            assert (
                ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
                == system.gateway
            )
        else:
            route = by_kind(manifests, "HTTPRoute")[system.gateway]
            assert route["spec"]["rules"][0]["backendRefs"][0]["name"] == system.gateway
        stateless = (workloads - set(system.names)) | postgres
        prod = overlay.startswith("prod")
        assert set(by_kind(manifests, "HorizontalPodAutoscaler")) == (stateless if prod else set())
        assert set(by_kind(manifests, "PodDisruptionBudget")) == (stateless if prod else set())
        secrets = by_kind(manifests, "ExternalSecret")
        if prod:
            for name in postgres:
                keys = {d["secretKey"] for d in secrets[f"{name}-secrets"]["spec"]["data"]}
                assert "DATABASE_URL" in keys
            for deployment in by_kind(manifests, "Deployment").values():
                replicas = deployment["spec"]["replicas"]
                name = deployment["metadata"]["name"]
                assert replicas == (3 if name in stateless else 1), name
        else:
            assert not secrets
        mesh = "istio" in overlay
        assert set(by_kind(manifests, "VirtualService")) == (set(system.names) if mesh else set())
        assert set(by_kind(manifests, "DestinationRule")) == (workloads if mesh else set())
        if mesh:
            assert namespace["metadata"]["labels"]["istio-injection"] == "enabled"
            for rule in by_kind(manifests, "DestinationRule").values():
                assert (
                    rule["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] == 5
                )
            # Layer 7: each service admits exactly the mesh identities of its graph callers.
            routed_by = {r["service"] for r in model["gateway"]["routes"]}
            for name, policy in by_kind(manifests, "AuthorizationPolicy").items():
                callers = {c["from"] for c in model["calls"] if c["to"] == name}
                callers |= {system.gateway} if name in routed_by else set()
                principals = {
                    principal.rsplit("/", 1)[1]
                    for rule in policy["spec"]["rules"]
                    for source in rule["from"]
                    for principal in source["source"].get("principals", [])
                }
                assert principals == callers, name
                assert policy["spec"]["action"] == "ALLOW"
            assert set(by_kind(manifests, "AuthorizationPolicy")) == set(system.names)
            for service in by_kind(manifests, "VirtualService").values():
                assert all(
                    r["retries"]["attempts"] >= 1 and r["timeout"] for r in service["spec"]["http"]
                )


def test_network_policies_allow_exactly_the_graph(
    system: System, overlays: dict[str, list[dict[str, Any]]]
) -> None:
    """Who may reach whom, computed from the NetworkPolicies against pods that are there and pods
    that should not be reached, is exactly the blueprint's graph (plus istiod in the mesh)."""
    namespace = system.model["name"]
    for overlay in ("dev", "prod-istio"):
        manifests = overlays[overlay]
        policies = [d for d in manifests if d["kind"] == "NetworkPolicy"]
        assert by_kind(manifests, "NetworkPolicy")["default-deny"]["spec"] == {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
        }
        pods = cluster(system, namespace, manifests)
        found = allowed(policies, namespace, pods)
        expected = graph_pairs(system, istio="istio" in overlay)
        if "istio" in overlay:  # every pod of the namespace has a sidecar, which needs istiod
            expected |= {(pod.name, "istiod", 15012) for pod in pods if pod.namespace == namespace}
        assert found - expected == set(), f"{overlay}: allowed beyond the graph"
        assert expected - found == set(), f"{overlay}: the graph's edges not allowed"


def test_variants_without_issuer_on_rabbitmq_or_without_gateway(tmp_path: Path) -> None:
    """Other shapes of the answer: no issuer (JWKS from outside), RabbitMQ, no mesh, no Helm;
    then no gateway (a blueprint may have none); then nothing to deploy. Each builds, validates
    and allows exactly its graph."""
    model = load_yaml(FIXTURE)
    model.update(
        name="bazaar",
        broker="rabbitmq",
        auth_issuer=None,
        deploy={"compose": True, "kubernetes": True, "helm": False, "istio": False},
    )
    root = render_system(model, tmp_path / "bazaar")
    system = System(root, model)
    assert not (root / "charts").exists()
    assert not (root / "k8s" / "components" / "istio").exists()
    assert sorted(p.name for p in (root / "k8s" / "overlays").iterdir()) == ["dev", "prod"]
    text = build(system, "prod")
    (tmp_path / "prod.yaml").write_text(text)
    validate([tmp_path / "prod.yaml"])
    manifests = documents(text)
    configs = by_kind(manifests, "ConfigMap")
    assert "AUTH_JWKS_URL" not in configs["cart-config"]["data"]
    assert configs["cart-config"]["data"]["BROKER_URL"] == "amqp://rabbitmq:5672/"
    keys = {
        d["secretKey"] for d in by_kind(manifests, "ExternalSecret")["cart-secrets"]["spec"]["data"]
    }
    assert {"DATABASE_URL", "BROKER_URL", "CATALOG_SERVICE_TOKEN", "AUTH_JWKS_URL"} <= keys
    policies = [d for d in manifests if d["kind"] == "NetworkPolicy"]
    found = allowed(policies, "bazaar", cluster(system, "bazaar", manifests))
    assert found == graph_pairs(system)
    # No gateway: no way in (no HTTPRoute, no Ingress component), the mesh and graph without it.
    model.update(name="backoffice", gateway=None)
    model["deploy"].update(istio=True, helm=True)
    root = render_system(model, tmp_path / "backoffice")
    system = System(root, model)
    assert not (root / "k8s" / "components" / "ingress").exists()
    chart = yaml.safe_load((root / "charts" / "backoffice" / "Chart.yaml").read_text())
    assert [d["name"] for d in chart["dependencies"]] == system.names
    text = build(system, "dev-istio")
    (tmp_path / "dev-istio.yaml").write_text(text)
    validate([tmp_path / "dev-istio.yaml"])
    manifests = documents(text)
    assert set(by_kind(manifests, "Deployment")) == set(system.names)
    assert not by_kind(manifests, "HTTPRoute")
    policies = [d for d in manifests if d["kind"] == "NetworkPolicy"]
    pods = cluster(system, "backoffice", manifests)
    expected = graph_pairs(system, istio=True)
    expected |= {(pod.name, "istiod", 15012) for pod in pods if pod.namespace == "backoffice"}
    assert allowed(policies, "backoffice", pods) == expected
    empty = render_system(
        {**model, "deploy": {"compose": True, "kubernetes": False, "helm": False, "istio": False}},
        tmp_path / "none",
    )
    assert not (empty / "k8s").exists()
    assert not (empty / "charts").exists()


# Helm umbrella -------------------------------------------------------------------------------


def test_umbrella_chart_lints_and_renders(system: System, tmp_path: Path) -> None:
    """The umbrella chart resolves its file references, lints, renders valid manifests with the
    global values applied, and its NetworkPolicies allow exactly the graph too."""
    name = system.model["name"]
    # `helm dependency update` writes into the chart: a copy of the charts (the system's and
    # its projects', where the file references point) keeps the shared system as it was.
    copy = tmp_path / "system"
    for part in ("", *system.workloads):
        shutil.copytree(system.root / part / "charts", copy / part / "charts")
    chart = copy / "charts" / name
    helm.dependency_update(str(chart))
    assert sorted(p.name for p in (chart / "charts").glob("*.tgz")) == sorted(
        f"{n}-0.1.0.tgz" for n in [*system.names, system.gateway]
    )
    report = helm.lint(str(chart), strict=True, with_subcharts=True, namespace=name)
    assert not report["errors"], report
    loaded = helm.Chart.load(str(chart))
    files = loaded.render(None, name=name, namespace=name)
    out = tmp_path / "rendered"
    manifests = []
    for template, text in files.items():
        if template.endswith("NOTES.txt") or not text.strip():
            continue
        target = out / template
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        manifests.extend(documents(text))
    validate(sorted(out.rglob("*.yaml")))
    deployments = by_kind(manifests, "Deployment")
    assert set(deployments) == {*system.names, system.gateway}  # fullnameOverride: DNS = name
    for workload, deployment in deployments.items():
        server = deployment["spec"]["template"]["spec"]["containers"][0]
        assert server["image"] == f"ghcr.io/example/{name}/{workload}-service:0.1.0", workload
        # each subchart its own package (Helm's named templates are global to the umbrella)
        package = workload.replace("-", "_") + "_service"
        assert server["command"][:4] == ["python", "-m", package, "serve"], workload
    for job in by_kind(manifests, "Job").values():
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        if job["metadata"]["name"].endswith("-migrate"):
            package = job["metadata"]["name"].removesuffix("-migrate").replace("-", "_")
            assert command == ["python", "-m", f"{package}_service", "migrate"]
    configs = by_kind(manifests, "ConfigMap")
    issuer = system.model["auth_issuer"]
    for s in system.model["services"]:
        data = configs[s["name"]]["data"]
        if s["publishes"] or s["consumes"]:
            assert data["BROKER_URL"] == "nats://nats:4222"
        else:
            assert "BROKER_URL" not in data
        assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4318"
        assert data["AUTH_JWKS_URL"] == f"http://{issuer}:8000/.well-known/jwks.json"
        for callee in s["calls"]:
            assert data[f"{callee.upper()}_SERVICE_URL"] == f"http://{callee}:8000"
    policies = [d for d in manifests if d["kind"] == "NetworkPolicy"]
    found = allowed(policies, name, cluster(system, name, manifests))
    expected = graph_pairs(system)
    assert found - expected == set(), "the charts allow more than the graph"
    assert expected - found == set(), "the charts block edges of the graph"
    # Global and per-service overrides reach the services' charts.
    values: dict[str, Any] = {"global": {"registry": "registry.example.com/team", "tag": "2.0.1"}}
    first, last = system.names[0], system.names[-1]
    values[last] = {"config": {"LOG_LEVEL": "DEBUG", "BROKER_URL": "nats://other:4222"}}
    files = loaded.render(values, name=name, namespace=name)
    rendered = [d for k, text in files.items() if k.endswith(".yaml") for d in documents(text)]
    image = by_kind(rendered, "Deployment")[first]["spec"]["template"]["spec"]["containers"][0]
    assert image["image"] == f"registry.example.com/team/{first}-service:2.0.1"
    overridden = by_kind(rendered, "ConfigMap")[last]["data"]
    assert (overridden["LOG_LEVEL"], overridden["BROKER_URL"]) == ("DEBUG", "nats://other:4222")
    for bad in ({last: {"replicaCount": "many"}}, {f"{first}x": {"replicaCount": 2}}):
        with pytest.raises(helm.HelmError, match="schema"):
            loaded.render(bad, name=name, namespace=name)


# Compose -------------------------------------------------------------------------------------


def test_compose_passes_the_schema_and_the_compose_binary(system: System) -> None:
    """compose.yaml passes the compose-spec schema and `docker-compose config -q`, and wires
    the graph: each service after its migration, the broker, its issuer; its callees' URLs;
    the gateway's upstreams; a database per PostgreSQL service; a scrape job and a dashboard
    per workload; secrets only from .env."""
    root, model = system.root, system.model
    services = check_compose(root)["services"]
    env = {s["name"]: s["env"] for s in model["services"]}
    healthy = {"condition": "service_healthy"}
    issuer, broker = model["auth_issuer"], model["broker"]
    postgres = [s["name"] for s in model["services"] if s["database"] == "postgres"]
    for s in model["services"]:
        name = s["name"]
        app = services[name]
        settings, depends = app["environment"], app["depends_on"]
        assert "healthcheck" in app, name
        assert services[f"{name}-migrate"]["command"][-1] == "migrate", name
        assert depends[f"{name}-migrate"] == {"condition": "service_completed_successfully"}
        if name in postgres:
            assert settings["DATABASE_URL"].endswith(f"@postgres:5432/{name}"), name
        else:
            assert settings["DATABASE_URL"].startswith("sqlite+aiosqlite:"), name
        if s["publishes"] or s["consumes"]:
            assert depends[broker] == healthy, name
        if issuer and name != issuer:
            assert depends[issuer] == healthy, name
        urls = {k: v for k, v in settings.items() if k.endswith("_SERVICE_URL")}
        assert urls == {f"{env[c]}_SERVICE_URL": f"http://{c}:8000" for c in s["calls"]}, name
        if issuer and s["calls"] and name != issuer:  # its tokens: client credentials
            assert settings["SERVICE_AUTH_URL"] == f"http://{issuer}:8000/v1/tokens", name
            assert settings["SERVICE_CLIENT_ID"] == name
            assert settings["SERVICE_CLIENT_SECRET"].startswith(f"${{{env[name]}_CLIENT_SECRET:?")
            assert not [k for k in settings if k.endswith("_SERVICE_TOKEN")], name
    if issuer:  # the issuer knows every caller: its secret (from .env) and its scopes
        clients = services[issuer]["environment"]["SERVICE_CLIENTS"]
        assert json.loads(re.sub(r"\$\{[^}]*\}", "from-env", clients)) == {
            s["name"]: {"secret": "from-env", "scopes": s.get("client_scopes", [])}
            for s in model["services"]
            if s["calls"] and s["name"] != issuer
        }
    if model["gateway"]:
        gateway = services[system.gateway]["environment"]
        for route in model["gateway"]["routes"]:
            upstream = route["service"]
            assert gateway[f"{env[upstream]}_SERVICE_URL"] == f"http://{upstream}:8000"
    infrastructure = {broker, "redis", "otel-collector", "jaeger", "prometheus", "grafana"}
    assert infrastructure | ({"postgres"} if postgres else set()) <= set(services)
    init = (root / "compose/postgres/init.sql").read_text()
    assert set(re.findall(r'CREATE DATABASE "([^"]+)";', init)) == set(postgres)
    assert "change-me" not in (root / "compose.yaml").read_text()  # secrets come from .env
    assert "POSTGRES_PASSWORD=" in (root / ".env.example").read_text()
    assert ".env" in (root / ".gitignore").read_text().splitlines()
    prometheus = yaml.safe_load((root / "compose/prometheus.yml").read_text())
    assert {job["job_name"] for job in prometheus["scrape_configs"]} == system.workloads
    for name in system.names:
        dashboard = json.loads((root / f"compose/grafana/dashboards/{name}.json").read_text())
        exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
        assert f'http_requests_total{{job="{name}"' in exprs


# README ----------------------------------------------------------------------------------------


def test_the_readme_diagram_parses_as_mermaid(system: System, tmp_path: Path) -> None:
    """The README's diagram of the graph is valid Mermaid for Mermaid's own parser, which is
    strict: the same diagram with a dangling edge is refused."""
    blocks = mermaid_blocks((system.root / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 1
    diagram = blocks[0]
    for name in system.workloads:
        assert re.search(rf"^\s*{re.escape(name)}\b", diagram, re.MULTILINE), name
    broken = diagram.rstrip() + "\n    client -->\n"
    verdicts = parse_diagrams(tmp_path, {"readme": diagram, "broken": broken})
    assert verdicts["readme"] == {"ok": True, "type": "flowchart-v2"}, verdicts["readme"]
    assert not verdicts["broken"]["ok"]
    assert "Parse error" in verdicts["broken"]["error"]


# Contracts ----------------------------------------------------------------------------------


def contracts(root: Path, report: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "scripts/contracts.py", "--report", str(report), *options],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_contracts_matrix_green_then_red_on_a_broken_provider(tmp_path: Path) -> None:
    """`make contracts` on the generated services: cart's pacts (its calls and the event it
    consumes) verified by catalog, all green; then catalog renames a route its consumer uses and
    the matrix turns red, exit 1. (Its own generation: the whole projects of the pair.)"""
    model = load_yaml(FIXTURE)
    root = render_system(model, tmp_path / model["name"])
    for service in model["services"]:
        if service["name"] in SPEC_FILES:
            spec = spec_of(service["name"])
            copier_copy(spec, root / service["name"], database=service["database"])
    script = root / "scripts" / "contracts.py"
    for command in (
        ("ruff", "check", "--no-cache", "--line-length", "100", "--select", "E,F,W,I,B,UP,SIM,RUF"),
        ("ruff", "format", "--no-cache", "--line-length", "100", "--check"),
        ("mypy", "--strict", "--no-incremental"),
    ):
        checked = subprocess.run(
            [tool(command[0]), *command[1:], str(script)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr

    green = contracts(root, tmp_path / "green.json")
    output = green.stdout + green.stderr
    assert green.returncode == 0, output[-6000:]
    outcomes = json.loads((tmp_path / "green.json").read_text())
    assert [(o["consumer"], o["provider"], o["status"]) for o in outcomes] == [
        ("cart", "catalog", "pass")
    ]
    assert "consumer \\ provider" in output
    assert "1 of 1 consumer -> provider pairs verified" in output
    pact = json.loads((root / "build" / "pacts" / "cart-catalog.json").read_text())
    kinds = {i["type"] for i in pact["interactions"]}
    assert kinds == {"Synchronous/HTTP", "Asynchronous/Messages"}  # calls and events

    # The provider breaks its API: /v1/products moves. Pact replays the consumer's expectations.
    api = root / "catalog" / "src" / "catalog_service" / "api" / "product.py"
    original = api.read_text()
    assert '"/v1/products' in original
    api.write_text(original.replace('"/v1/products', '"/v1/goods'))
    try:
        red = contracts(root, tmp_path / "red.json", "--no-consumer-tests")  # the same pacts
    finally:
        api.write_text(original)
    output = red.stdout + red.stderr
    assert red.returncode == 1, output[-6000:]
    outcomes = json.loads((tmp_path / "red.json").read_text())
    assert [(o["consumer"], o["provider"], o["status"]) for o in outcomes] == [
        ("cart", "catalog", "fail")
    ]
    assert "FAIL" in output
    assert "0 of 1 consumer -> provider pairs verified" in output
    assert "pact verification failed" in output
    assert "consumer tests of" not in output  # verified again, the consumer's pacts unchanged
    assert "expected 200 but was 404" in output  # the verifier's report, in the matrix's output
