"""Four processes — identity, tasks, notifications, gateway — pass the same public flow as the monolith."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster import GROUPS, monolith, split_cluster
from tests.e2e.flow import register_and_log_in, run_public_flow

pytestmark = pytest.mark.slow


def test_the_monolith_passes_the_public_flow(tmp_path: Path) -> None:
    with monolith(tmp_path) as base:
        run_public_flow(base)


def test_the_split_passes_the_same_flow_through_the_gateway(tmp_path: Path) -> None:
    with split_cluster(tmp_path) as cluster:
        run_public_flow(cluster.gateway)
        assert sorted(p.name for p in (tmp_path / "data").glob("*.db")) == [
            "identity.db",
            "notifications.db",
            "tasks.db",
        ]


@pytest.mark.postgres
def test_the_split_passes_the_same_flow_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    with split_cluster(tmp_path, database_url=postgres_url) as cluster:
        run_public_flow(cluster.gateway)


def test_a_body_over_the_limit_is_refused_at_the_gateway_and_logs_no_server_error(tmp_path: Path) -> None:
    huge = b'{"title": "' + b"x" * (1024 * 1024 + 1) + b'"}'
    with split_cluster(tmp_path) as cluster:
        with httpx.Client(base_url=cluster.gateway, timeout=15) as http:
            _, auth = register_and_log_in(http, "Ada")
            for chunked in (False, True):
                body = iter([huge]) if chunked else huge  # an iterator goes out without Content-Length
                response = http.post(
                    "/api/v1/tasks", content=body, headers={**auth, "Content-Type": "application/json"}
                )
                assert response.status_code == 413, response.text
                assert response.json()["code"] == "http.payload_too_large"
            assert http.get("/api/v1/tasks", headers=auth).json()["items"] == []
        errors = {
            group: [
                line
                for line in _log_records(cluster.log_file(group))
                if line.get("level") in {"error", "critical"}
            ]
            for group in GROUPS
        }
    assert errors == {group: [] for group in GROUPS}


def _log_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            records.append({"level": "error", "message": line})  # not ours: a traceback, say
    return records
