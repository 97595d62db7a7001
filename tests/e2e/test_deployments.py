"""Two deployments on one broker, neither configuring a namespace, never apply each other's events."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from bench.server import remove_broker_state

from tests.e2e.events import require_broker
from tests.e2e.flow import eventually, notifications_of, register_and_log_in
from tests.servers import TESSERA, TEST_SERVER_CONFIG, clean_env, free_port, server_process, wait_until_ready

pytestmark = pytest.mark.slow

QUICK_EVENTS = "relay_poll_seconds = 0.1\nbackoff_initial_seconds = 0.05\nbackoff_max_seconds = 0.5\n"


class Deployment:
    """One monolith with its own data dir, on the shared broker, with the default namespace."""

    def __init__(self, root: Path, bus: str) -> None:
        root.mkdir()
        config = root / "tessera.toml"
        config.write_text(TEST_SERVER_CONFIG + f'[events]\nbus = "{bus}"\n' + QUICK_EVENTS)
        self.data_dir = root / "data"
        self.env = clean_env(TESSERA_CONFIG=str(config), TESSERA_DATA_DIR=str(self.data_dir))
        upgraded = subprocess.run(
            [TESSERA, "db", "upgrade"], env=self.env, check=True, capture_output=True, text=True, timeout=120
        )
        found = re.search(r"events namespace (\S+)", upgraded.stdout)
        assert found, upgraded.stdout
        self.namespace = found[1]
        self.url = f"http://127.0.0.1:{free_port()}"

    def notifications(self) -> int:
        with sqlite3.connect(self.data_dir / "notifications.db") as connection:
            return int(connection.execute("SELECT count(*) FROM notifications").fetchone()[0])


@pytest.fixture(params=["nats", "rabbitmq"])
def two_deployments(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Deployment, Deployment]]:
    bus: str = request.param
    require_broker(bus)
    first, second = Deployment(tmp_path / "first", bus), Deployment(tmp_path / "second", bus)
    try:
        with ExitStack() as stack:
            for deployment in (first, second):
                port = deployment.url.rsplit(":", 1)[1]
                process = stack.enter_context(server_process(deployment.env, "--port", port))
                wait_until_ready(deployment.url, process=process)
            yield first, second
    finally:
        for deployment in (first, second):
            assert asyncio.run(remove_broker_state(bus, deployment.namespace)) is None


def test_each_deployment_applies_only_its_own_events(two_deployments: tuple[Deployment, Deployment]) -> None:
    first, second = two_deployments
    assert first.namespace != second.namespace
    with httpx.Client(base_url=first.url, timeout=15) as http:
        _, ada = register_and_log_in(http, "Ada")
        bob_id, bob = register_and_log_in(http, "Bob")
        tasks = [
            http.post("/api/v1/tasks", json={"title": f"t{i}", "assignee_id": bob_id}, headers=ada).json()[
                "id"
            ]
            for i in range(5)
        ]
        for task_id in tasks:  # every one reaches Bob: the first deployment's consumer saw them all
            eventually(
                lambda task_id=task_id: notifications_of(http, bob, task_id, "task_assigned"),
                within=5.0,
                what=f"Bob is notified of {task_id}",
            )
    assert first.notifications() == 5
    assert second.notifications() == 0
