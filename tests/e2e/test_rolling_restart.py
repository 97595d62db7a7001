"""A rolling restart of one group of the split, behind the gateway, under load: 0 failed requests.

As Kubernetes does it: a new instance of the tasks group starts and becomes ready; the
Service (here a loopback TCP proxy the topology names as the tasks group's address) sends
new connections to it; the old instance gets SIGTERM, drains (readiness 503, each answer
closing its connection), and stops. Callers going through the gateway never notice.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import GROUPS, split_cluster
from tests.e2e.flow import eventually, register_and_log_in
from tests.servers import free_port, server_process, wait_until_ready
from tests.tcp_proxy import TcpProxy

CLIENTS = 4
MAX_REQUESTS = 3000  # per client: bounded even if the test's conditions never came


class Caller(threading.Thread):
    """Alternates a create and a list through the gateway until told to stop."""

    def __init__(self, base: str, auth: dict[str, str], name: str) -> None:
        super().__init__(daemon=True)
        self.base, self.auth, self.tag = base, auth, name
        self.stop = threading.Event()
        self.created: list[str] = []
        self.answered = 0
        self.failed: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            for i in range(MAX_REQUESTS):
                if self.stop.is_set():
                    return
                try:
                    if i % 2 == 0:
                        title = f"{self.tag}-{i}"
                        response = http.post("/api/v1/tasks", json={"title": title}, headers=self.auth)
                        if response.status_code == 201:
                            self.created.append(title)
                    else:
                        response = http.get("/api/v1/tasks", params={"limit": 5}, headers=self.auth)
                except httpx.TransportError as error:
                    self.failed.append(f"{type(error).__name__}: {error}")
                    continue
                if response.status_code >= 300:
                    self.failed.append(
                        f"{response.request.method} {response.status_code} {response.text[:200]}"
                    )
                self.answered += 1


@pytest.mark.slow
def test_one_group_rolls_over_to_a_new_instance_without_a_failed_request(tmp_path: Path) -> None:
    ports = {group: free_port() for group in GROUPS}
    with (
        TcpProxy("127.0.0.1", ports["tasks"]) as service,
        split_cluster(
            tmp_path,
            ports=ports,
            reach={"tasks": f"http://127.0.0.1:{service.port}"},
            environment={"TESSERA_SERVER__DRAIN_SECONDS": "1.5"},
        ) as cluster,
    ):
        with httpx.Client(base_url=cluster.gateway, timeout=30) as http:
            _, ada = register_and_log_in(http, "Ada")
        callers = [Caller(cluster.gateway, ada, f"c{n}") for n in range(CLIENTS)]
        for caller in callers:
            caller.start()

        def answered() -> int:
            return sum(c.answered for c in callers)

        eventually(lambda: answered() >= 40 or None, within=60, what="40 answers before the restart")

        new_port = free_port()
        new = tmp_path / "logs" / "tasks-new.log"
        with server_process(cluster.env, "--group", "tasks", "--port", str(new_port), log=new) as fresh:
            wait_until_ready(f"http://127.0.0.1:{new_port}", process=fresh, log=new)
            ready = httpx.get(f"http://127.0.0.1:{new_port}/health/ready", timeout=10)
            assert ready.status_code == 200
            service.retarget(new_port)  # the Service's endpoints: the new pod in, the old out
            old = cluster.processes.pop("tasks")
            old.send_signal(signal.SIGTERM)
            old.wait(timeout=40)
            after = answered()
            eventually(lambda: answered() >= after + 40 or None, within=60, what="40 answers after it")
            for caller in callers:
                caller.stop.set()
            for caller in callers:
                caller.join(timeout=60)

            assert [f for c in callers for f in c.failed] == []
            with httpx.Client(base_url=cluster.gateway, timeout=30) as http:
                titles: set[str] = set()
                cursor = None
                while True:
                    params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
                    page = http.get("/api/v1/tasks", params=params, headers=ada).json()
                    titles |= {task["title"] for task in page["items"]}
                    if (cursor := page["next_cursor"]) is None:
                        break
            assert {t for c in callers for t in c.created} <= titles
