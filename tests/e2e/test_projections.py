"""`tessera projections rebuild` from another process while the server serves: the same answers after."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster import monolith
from tests.e2e.flow import eventually, register_and_log_in, timeline_of
from tests.servers import TESSERA, clean_env

pytestmark = pytest.mark.slow


def _answers(http: httpx.Client, auth: dict[str, str], task_ids: list[str]) -> list[Any]:
    """Every read model's JSON as the API answers it."""
    found = [http.get("/api/v1/activity", params={"limit": 100}, headers=auth).json()]
    found += [http.get(f"/api/v1/tasks/{t}/activity", headers=auth).json() for t in task_ids]
    found.append(http.get("/api/v1/activity/stats", headers=auth).json())
    return found


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_rebuild_while_the_server_serves_answers_the_same_json(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    environment = {}
    if database == "postgres":
        environment["TESSERA_DATABASE__URL"] = request.getfixturevalue("postgres_url")
    with monolith(tmp_path, environment=environment) as base, httpx.Client(base_url=base, timeout=15) as http:
        _, ada = register_and_log_in(http, "Ada")
        bob_id, _ = register_and_log_in(http, "Bob")
        task_ids = []
        for i in range(6):
            task = http.post(
                "/api/v1/tasks", json={"title": f"t{i}", "assignee_id": bob_id}, headers=ada
            ).json()
            http.patch(f"/api/v1/tasks/{task['id']}", json={"status": "done"}, headers=ada)
            task_ids.append(task["id"])
        for task_id in task_ids:
            eventually(lambda t=task_id: timeline_of(http, ada, t, 3), within=5.0, what="each task's history")
        cli = clean_env(
            TESSERA_CONFIG=str(tmp_path / "monolith.toml"),
            TESSERA_DATA_DIR=str(tmp_path / "data"),
            **environment,
        )
        # Every projection caught up (the timeline may lead the feed and the figures by a round).
        eventually(lambda: _caught_up(cli), within=10.0, what="every projection caught up")
        before = _answers(http, ada, task_ids)
        rebuilt = subprocess.run(
            [TESSERA, "projections", "rebuild"], env=cli, capture_output=True, text=True, timeout=120
        )
        assert rebuilt.returncode == 0, rebuilt.stderr
        for name in ("timeline", "feed", "stats", "audit"):
            assert f"activity: {name} rebuilt from" in rebuilt.stdout
        assert _answers(http, ada, task_ids) == before

        status = subprocess.run(
            [TESSERA, "projections", "status"], env=cli, capture_output=True, text=True, timeout=60
        )
        rows = [line.split() for line in status.stdout.splitlines()]
        assert rows[0] == ["module", "projection", "position", "head", "behind", "rows"]
        assert {row[1] for row in rows[1:]} == {"timeline", "feed", "stats", "audit"}
        assert all(row[4] == "0" for row in rows[1:]), status.stdout
        unknown = subprocess.run(
            [TESSERA, "projections", "rebuild", "nonesuch"],
            env=cli,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert unknown.returncode == 1
        assert "no projection named 'nonesuch'" in unknown.stderr


def _caught_up(cli: dict[str, str]) -> bool | None:
    status = subprocess.run(
        [TESSERA, "projections", "status"], env=cli, capture_output=True, text=True, timeout=60
    )
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    return (bool(rows) and all(row[4] == "0" for row in rows)) or None
