"""``tessera extract``: a plan from the monolith's own configuration, and a topology that runs.

The plan names what crosses (the callers of the module's contract, its proxied routes, its
events), the cost of one remote call measured on the spot, and the steps; the topology file it
writes, run as one ``tessera serve --group`` process per group, passes the public flow; its
kustomize overlay renders and validates. A module that already runs alone is refused (exit 2).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tomllib
import uuid
from contextlib import ExitStack
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import yaml

from tests.conftest import service_unavailable
from tests.e2e.cluster import Cluster, migrate, monolith
from tests.e2e.flow import run_public_flow
from tests.servers import TESSERA, TEST_SERVER_CONFIG, clean_env

pytestmark = pytest.mark.slow

KUBERNETES = "1.32.0"


def _free_ports_side_by_side(count: int) -> int:
    """The first of ``count`` free ports in a row: the monolith's address, then the groups beside it."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            try:
                for offset in range(1, count):
                    with socket.socket() as other:
                        other.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port
    raise AssertionError(f"no {count} free ports in a row")


def _extract(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TESSERA, "extract", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_extracting_notifications_plans_the_move_and_writes_a_topology_that_runs(tmp_path: Path) -> None:
    port = _free_ports_side_by_side(3)
    base_config = tmp_path / "tessera.toml"
    base_config.write_text(TEST_SERVER_CONFIG + f'[events]\nnamespace = "t{uuid.uuid4().hex[:12]}"\n')
    env = clean_env(
        TESSERA_CONFIG=str(base_config),
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        TESSERA_SERVER__PORT=str(port),
    )
    migrate(env)  # the monolith's databases, as a deployment about to split has them
    out = tmp_path / "plan"
    planned = _extract(env, "notifications", "--out", str(out), "--samples", "50")
    assert planned.returncode == 0, planned.stderr
    plan = planned.stdout
    assert plan == (out / "PLAN.md").read_text() + "\n"
    assert "| accounts | delete_inbox," in plan  # who calls its contract
    assert "- `GET /api/v1/notifications`" in plan  # its routes, proxied after the move
    assert "| tasks.TaskAssigned.v1 | consumed | tasks |" in plan
    measured = re.search(r"\*\*([0-9.]+) ms p50 / ([0-9.]+) ms p99\*\*", plan)
    assert measured is not None, plan
    assert 0 < float(measured[1]) <= float(measured[2])
    assert re.search(r"\(\+ one hop each, [0-9.]+ ms p50 / [0-9.]+ ms p99\)", plan), (
        plan
    )  # the gateway's, timed
    assert "| notifications | 0 |" in plan  # its tables, counted in its own database
    assert "events: nats (today in-process" in plan

    topology = tomllib.loads((out / "topology.toml").read_text())
    groups = topology["topology"]["groups"]
    assert groups["gateway"] == {"modules": [], "url": f"http://127.0.0.1:{port}"}  # the public address stays
    assert groups["main"]["url"] == f"http://127.0.0.1:{port + 1}"
    assert "notifications" not in groups["main"]["modules"]
    assert groups["notifications"] == {"modules": ["notifications"], "url": f"http://127.0.0.1:{port + 2}"}
    assert topology["events"]["bus"] == "nats"

    # The topology runs as it is: one process per group, the public flow through the one that stays.
    split_env = {**env, "TESSERA_CONFIG": f"{base_config}:{out / 'topology.toml'}"}
    with ExitStack() as stack:
        ports = {"gateway": port, "main": port + 1, "notifications": port + 2}
        cluster = Cluster(split_env, ports, stack, logs=tmp_path / "logs")
        for group in ("main", "notifications", "gateway"):  # as the plan's steps: where identity runs first
            cluster.start(group)
        run_public_flow(cluster.gateway)

    # Extracted, it already runs alone: refused, with the reason, and nothing written.
    again = _extract(split_env, "notifications", "--out", str(tmp_path / "again"))
    assert again.returncode == 2
    assert "notifications already runs alone, in the group 'notifications'" in again.stderr
    assert not (tmp_path / "again").exists()


def test_the_overlay_it_writes_renders_and_validates(tmp_path: Path) -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        service_unavailable("kubectl (with kustomize) is not installed")
    env = clean_env(TESSERA_DATA_DIR=str(tmp_path / "data"))
    out = tmp_path / "plan"
    assert _extract(env, "notifications", "--out", str(out), "--samples", "10").returncode == 0
    rendered = subprocess.run(
        [str(kubectl), "kustomize", str(out / "k8s")], capture_output=True, text=True, timeout=60, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) == {"tessera-gateway", "tessera-main", "tessera-notifications"}
    env_of = {
        name: {e["name"]: e.get("value") for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}
        for name, d in deployments.items()
    }
    assert env_of["tessera-notifications"]["TESSERA_GROUP"] == "notifications"
    assert env_of["tessera-main"]["TESSERA_GROUP"] == "main"
    ingresses = [o["metadata"]["name"] for o in objects if o["kind"] == "Ingress"]
    assert ingresses == ["tessera-gateway"]  # the outside reaches the gateway only
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    groups = tomllib.loads(config["data"]["topology.toml"])["topology"]["groups"]
    assert groups["notifications"]["url"] == "http://tessera-notifications:8000"


def test_from_a_running_instance_the_plan_counts_the_calls_into_the_module_per_route(tmp_path: Path) -> None:
    env = clean_env(TESSERA_DATA_DIR=str(tmp_path / "data"))
    with monolith(tmp_path) as base:
        run_public_flow(base)
        planned = _extract(env, "identity", "--from", base, "--samples", "20")
        snapshot = tmp_path / "metrics.txt"
        snapshot.write_text(httpx.get(f"{base}/metrics", timeout=10).text)
    assert planned.returncode == 0, planned.stderr
    from_snapshot = _extract(env, "identity", "--from", str(snapshot), "--samples", "20")  # the same, offline
    assert from_snapshot.returncode == 0, from_snapshot.stderr
    assert "| `/api/v1/tasks` |" in from_snapshot.stdout
    rows = {
        match[1]: (int(match[2]), int(match[3]), float(match[4]))
        for match in re.finditer(
            r"^\| `([^`]+)` \| ([0-9,]+) \| ([0-9,]+) \| ([0-9.]+) \| [0-9.]+ ms \|$",
            planned.stdout.replace(",", ""),
            re.MULTILINE,
        )
    }
    # Creating a task with an assignee asks identity whether the assignee may be assigned.
    requests, calls, per_request = rows["/api/v1/tasks"]
    assert calls > 0
    assert per_request == pytest.approx(calls / requests, abs=0.01)
    assert f"Counted by {base} since it started" in planned.stdout
