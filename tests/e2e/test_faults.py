"""Faults in a split deployment: a dependency killed, restarted, or slow."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import GROUPS, DelayingProxy, split_cluster
from tests.e2e.flow import register_and_log_in
from tests.servers import free_port

pytestmark = pytest.mark.slow

TIMEOUT = 1.0  # rpc.timeout_seconds in the cluster's configuration


def _timed_post(
    http: httpx.Client, auth: dict[str, str], body: dict[str, object]
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = http.post("/api/v1/tasks", json=body, headers=auth)
    return response, time.monotonic() - started


def test_identity_killed_then_restarted(tmp_path: Path) -> None:
    with split_cluster(tmp_path) as cluster, httpx.Client(base_url=cluster.gateway, timeout=30) as http:
        ada_id, ada = register_and_log_in(http, "Ada")
        bob_id, _ = register_and_log_in(http, "Bob")
        http.post(
            "/api/v1/tasks", json={"title": "mine", "assignee_id": bob_id}, headers=ada
        ).raise_for_status()

        cluster.kill("identity")

        response, elapsed = _timed_post(http, ada, {"title": "for Bob", "assignee_id": bob_id})
        assert response.status_code == 503
        assert response.json()["code"] == "dependency.unavailable"
        # In words, without transport internals ("ConnectError: [Errno 111] Connection refused")
        assert "identity" in response.json()["detail"]
        assert not {"Error", "Errno", "refused", "127.0.0.1"} & set(
            response.json()["detail"].replace(":", " ").split()
        )
        assert int(response.headers["retry-after"]) >= 1
        assert elapsed < TIMEOUT + 1.0, f"503 took {elapsed:.2f}s"
        # work that does not need identity goes on: listing one's own tasks, creating unassigned ones
        listing = http.get("/api/v1/tasks", headers=ada)
        assert listing.status_code == 200
        assert [t["title"] for t in listing.json()["items"]] == ["mine"]
        owner = listing.json()["items"][0]["owner"]
        assert owner["id"] == ada_id
        # the name tasks copied a moment ago (cache.profile_seconds), or none once the copy is stale
        assert owner["display_name"] in ("Ada", None)
        assert http.post("/api/v1/tasks", json={"title": "solo"}, headers=ada).status_code == 201

        cluster.start("identity")  # tasks and gateway are not restarted

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            response, _ = _timed_post(http, ada, {"title": "for Bob again", "assignee_id": bob_id})
            if response.status_code == 201:
                break
            assert response.status_code == 503
            time.sleep(0.2)
        assert response.status_code == 201, "did not recover after identity came back"
        assert response.json()["assignee"]["display_name"] == "Bob"


def test_a_slow_identity_gives_a_503_within_the_timeout(tmp_path: Path) -> None:
    with DelayingProxy() as proxy:  # bound first, so no port chosen below can collide with it
        ports = {group: free_port() for group in GROUPS}
        proxy.upstream_port = ports["identity"]
        identity_url = f"http://127.0.0.1:{proxy.port}"
        with (
            split_cluster(tmp_path, ports=ports, identity_url=identity_url) as cluster,
            httpx.Client(base_url=cluster.gateway, timeout=30) as http,
        ):
            _, ada = register_and_log_in(http, "Ada")
            bob_id, _ = register_and_log_in(http, "Bob")

            proxy.delay = 5 * TIMEOUT

            response, elapsed = _timed_post(http, ada, {"title": "for Bob", "assignee_id": bob_id})
            assert response.status_code == 503
            assert elapsed < TIMEOUT + 1.0, f"503 took {elapsed:.2f}s, the timeout is {TIMEOUT}s"

            proxy.delay = 0.0
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                response, _ = _timed_post(http, ada, {"title": "for Bob", "assignee_id": bob_id})
                if response.status_code == 201:
                    break
                time.sleep(0.2)
            assert response.status_code == 201
