"""The deployment files: each kustomize overlay renders, every object validates against the
Kubernetes schemas, the rules the README promises hold on what is rendered, the settings
they give Tessera load, and the compose files name only things that exist.

No cluster and no container engine run here: this is what can be checked without them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.composition.catalog import MODULES
from app.kernel.config import Settings, load_settings
from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose"
KUBERNETES = "1.32.0"  # the version kubectl on our machines speaks
OVERLAYS = ("monolith", "split", "mesh")
# Custom resources the schemas do not know: none yet (a ServiceMonitor would be one).
CUSTOM_KINDS: frozenset[str] = frozenset()

Objects = list[dict[str, Any]]


def _render(overlay: str) -> Objects:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        service_unavailable("kubectl (with kustomize) is not installed")
    done = subprocess.run(
        [str(kubectl), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, Objects]:
    return request.param, _render(request.param)


def _of(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _containers(workload: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_every_object_validates_against_the_kubernetes_schemas(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    for obj in objects:
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)


def test_each_deployment_has_probes_resources_a_budget_an_autoscaler_and_no_privilege(
    rendered: tuple[str, Objects],
) -> None:
    _, objects = rendered
    deployments = _of(objects, "Deployment")
    assert deployments
    for deployment in deployments:
        name, pod = deployment["metadata"]["name"], deployment["spec"]["template"]["spec"]
        labels = _pod_labels(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        assert pod["topologySpreadConstraints"]
        main = pod["containers"][0]
        assert main["livenessProbe"]["httpGet"]["path"] == "/health/live"  # never another service
        assert main["readinessProbe"]["httpGet"]["path"] == "/health/ready"
        assert main["startupProbe"]["httpGet"]["path"] == "/health/live"
        for container in _containers(deployment):
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]
        (wait,) = pod["initContainers"]
        assert wait["command"][:3] == ["tessera", "db", "wait"]  # this release's migrations first
        assert [p for p in _of(objects, "PodDisruptionBudget") if _selects(p["spec"]["selector"], labels)]
        assert [
            h for h in _of(objects, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name
        ]
        assert [
            s for s in _of(objects, "Service") if _selects({"matchLabels": s["spec"]["selector"]}, labels)
        ]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"


def test_the_grace_period_covers_the_drain_and_the_shutdown(
    rendered: tuple[str, Objects], tmp_path: Path
) -> None:
    _, objects = rendered
    settings = _settings(objects, tmp_path)
    for deployment in _of(objects, "Deployment"):
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert grace > settings.server.drain_seconds + settings.server.shutdown_grace_seconds


def test_a_release_migrates_in_a_job_outside_any_mesh(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    (job,) = _of(objects, "Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["tessera", "db", "upgrade"]
    annotations = job["spec"]["template"]["metadata"].get("annotations", {})
    assert annotations.get("linkerd.io/inject", "disabled") == "disabled"


def test_only_the_public_group_takes_outside_traffic(rendered: tuple[str, Objects]) -> None:
    overlay, objects = rendered
    public = "tessera" if overlay == "monolith" else "tessera-gateway"
    (ingress,) = _of(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend == public
    policies = _of(objects, "NetworkPolicy")
    for deployment in _of(objects, "Deployment"):
        labels = _pod_labels(deployment)
        applying = [p for p in policies if _selects(p["spec"]["podSelector"], labels)]
        assert any({"Ingress", "Egress"} <= set(p["spec"]["policyTypes"]) for p in applying)
        open_to_all = [
            rule
            for p in applying
            for rule in p["spec"].get("ingress", [])
            if "from" not in rule and {"port": 8000, "protocol": "TCP"} in rule["ports"]
        ]
        assert bool(open_to_all) == (deployment["metadata"]["name"] == public)


def test_a_group_is_reachable_only_from_the_groups_that_call_it(tmp_path: Path) -> None:
    """Callers of a group: groups whose modules require its contracts, groups checking user
    tokens (identity's keys and revocations), the gateway (it proxies every public route),
    and the groups it calls itself (they fetch its public service keys)."""
    objects = _render("split")
    groups = _settings(objects, tmp_path).topology.groups
    owner = {m: name for name, group in groups.items() for m in group.modules}
    provided = {module.provides.name: owner[module.name] for module in MODULES}
    calls = {("gateway", name) for name, group in groups.items() if group.modules}
    calls |= {(name, owner["identity"]) for name, group in groups.items() if group.modules}
    for module in MODULES:
        calls |= {(owner[module.name], provided[c.name]) for c in module.requires}
    calls = {(a, b) for a, b in calls if a != b}
    for name, group in groups.items():
        if not group.modules:
            continue  # the gateway: public
        (policy,) = (p for p in _of(objects, "NetworkPolicy") if p["metadata"]["name"] == f"tessera-{name}")
        (peers,) = (f["podSelector"] for f in policy["spec"]["ingress"][0]["from"] if "podSelector" in f)
        (allowed,) = peers["matchExpressions"]
        assert allowed["key"] == "app.kubernetes.io/component"
        expected = {a for a, b in calls if b == name} | {b for a, b in calls if a == name}
        assert set(allowed["values"]) == expected, name


def test_each_module_reaches_only_its_own_database(rendered: tuple[str, Objects], tmp_path: Path) -> None:
    """Database per service: a group holds its own modules' database URLs and no other's, and
    its pods may open connections to those databases only; the migration Job to all of them."""
    _, objects = rendered
    groups = _settings(objects, tmp_path).topology.groups
    everything = {m.name for m in MODULES}
    policies = _of(objects, "NetworkPolicy")
    for workload in [*_of(objects, "Deployment"), *_of(objects, "Job")]:
        pod = workload["spec"]["template"]
        group = _env(pod["spec"]["containers"][0]).get("TESSERA_GROUP")
        modules = set(groups[group].modules) if group else everything
        for container in _containers(workload):
            urls = {n for n in _env(container) if n.startswith("TESSERA_DATABASE__")}
            assert urls == {f"TESSERA_DATABASE__MODULES__{m.upper()}__URL_FILE" for m in modules}
        secrets = {
            source.get("secret", {}).get("secretName") or source.get("secret", {}).get("name")
            for volume in pod["spec"]["volumes"]
            for source in [volume, *volume.get("projected", {}).get("sources", [])]
        }
        assert {s for s in secrets if s and s.startswith("tessera-db-")} == {
            f"tessera-db-{m}" for m in modules
        }
        reachable = {
            value
            for policy in policies
            if _selects(policy["spec"]["podSelector"], pod["metadata"]["labels"])
            for rule in policy["spec"].get("egress", [])
            if {"port": 5432, "protocol": "TCP"} in rule.get("ports", [])
            for peer in rule["to"]
            for expression in peer["podSelector"].get("matchExpressions", [])
            if expression["key"] == "tessera.io/database"
            for value in expression.get("values", sorted(everything))  # Exists: every one
        }
        assert reachable == modules, workload["metadata"]["name"]


def test_only_the_group_where_identity_runs_holds_the_users_token_key(
    rendered: tuple[str, Objects], tmp_path: Path
) -> None:
    _, objects = rendered
    settings = _settings(objects, tmp_path)
    for deployment in _of(objects, "Deployment"):
        group = _env(deployment["spec"]["template"]["spec"]["containers"][0]).get("TESSERA_GROUP")
        runs_identity = group is None or "identity" in settings.topology.groups[group].modules
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        holds_key = any(v.get("secret", {}).get("secretName") == "tessera-token-key" for v in volumes)
        assert holds_key == runs_identity, deployment["metadata"]["name"]
        shared = next(v for v in volumes if v.get("secret", {}).get("secretName") == "tessera-secrets")
        assert "signing-key" not in {item["key"] for item in shared["secret"]["items"]}


def test_the_configuration_loads_and_places_every_module_where_a_service_answers(
    rendered: tuple[str, Objects], tmp_path: Path
) -> None:
    overlay, objects = rendered
    settings = _settings(objects, tmp_path)
    services = {s["metadata"]["name"] for s in _of(objects, "Service")}
    groups = {
        _env(d["spec"]["template"]["spec"]["containers"][0]).get("TESSERA_GROUP")
        for d in _of(objects, "Deployment")
    }
    if overlay == "monolith":
        assert settings.topology.groups == {}
        assert groups == {None}
        return
    placed = [m for g in settings.topology.groups.values() for m in g.modules]
    assert sorted(placed) == sorted(m.name for m in MODULES)
    assert groups == set(settings.topology.groups)
    for name, group in settings.topology.groups.items():
        assert group.url == f"http://tessera-{name}:8000"
        assert f"tessera-{name}" in services


def _settings(objects: Objects, where: Path) -> Settings:
    """What a container of this overlay reads: the production profile, then the ConfigMap's files."""
    (config,) = _of(objects, "ConfigMap")
    deployment = _of(objects, "Deployment")[0]
    mounted = _env(deployment["spec"]["template"]["spec"]["containers"][0])["TESSERA_CONFIG"].split(":")
    for name in config["data"]:
        (where / name).write_text(config["data"][name])
    files = ":".join(str(where / Path(name).name) for name in mounted)
    return load_settings({"TESSERA_PROFILE": "production", "TESSERA_CONFIG": files})


@pytest.mark.parametrize("file", ["monolith.yml", "split.yml"])
def test_the_compose_files_name_only_what_exists(file: str) -> None:
    compose = yaml.safe_load((COMPOSE / file).read_text())
    services = compose["services"]
    secrets, configs = compose["secrets"], compose.get("configs", {})
    assert (COMPOSE / compose["x-tessera"]["build"]["context"] / "Dockerfile").is_file()
    for config in configs.values():
        assert (COMPOSE / config["file"]).is_file()
    for secret in secrets.values():  # files the script writes, never values in the compose file
        assert secret["file"].startswith("./secrets/")
        assert Path(secret["file"]).name in (COMPOSE / "make-secrets.sh").read_text()
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on {needed}"
        for secret in service.get("secrets", []):
            assert secret in secrets
        for variable, value in service.get("environment", {}).items():
            if variable.endswith("_FILE"):
                assert Path(value).name in service["secrets"], f"{name}: {variable}"
    tessera = {n: s for n, s in services.items() if s.get("image") == "tessera:local"}
    assert services["migrate"]["command"] == ["tessera", "db", "upgrade"]
    for name, service in tessera.items():
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        holds_key = "signing_key" in service["secrets"]
        runs_identity = name != "migrate" and service["environment"].get("TESSERA_GROUP") in (
            None,
            "identity",
        )
        assert holds_key == runs_identity, name
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
