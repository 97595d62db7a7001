"""SIGTERM under a load of writes: the server drains, answers every request it took, loses nothing.

What an orchestrator's stop looks like from outside: readiness turns 503 while writes go on
being answered (``server.drain_seconds``); then the listener closes and new connections are
refused; every request the server read was answered 201, every acknowledged write is there
after a restart, no request was half-written, and every event it committed is delivered.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.e2e.flow import eventually, register_and_log_in
from tests.servers import TESSERA, clean_env, free_port, server_process, wait_until_ready

WRITERS = 6
MAX_WRITES = 150  # per writer: bounded even if the server never stopped
DRAIN_SECONDS = 1.5


class Writer(threading.Thread):
    """Creates tasks assigned to Bob over one keep-alive connection until the server is gone."""

    def __init__(self, base: str, auth: dict[str, str], assignee: str, name: str) -> None:
        super().__init__(daemon=True)
        self.base, self.auth, self.assignee, self.tag = base, auth, assignee, name
        self.acknowledged: list[str] = []  # titles answered 201
        self.refused: list[str] = []  # titles whose connection failed before any answer
        self.answered_otherwise: list[tuple[str, int]] = []  # titles answered, but not 201

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            for i in range(MAX_WRITES):
                title = f"{self.tag}-{i}"
                try:
                    response = http.post(
                        "/api/v1/tasks",
                        json={"title": title, "assignee_id": self.assignee},
                        headers={**self.auth, "Idempotency-Key": title},
                    )
                except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as error:
                    self.refused.append(title)
                    if isinstance(error, httpx.ConnectError):
                        return  # the listener is closed: nobody takes new connections any more
                    continue  # a keep-alive connection closed while idle: the next try opens a new one
                if response.status_code == 201:
                    self.acknowledged.append(title)
                else:
                    self.answered_otherwise.append((title, response.status_code))


def _request_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log.read_bytes().splitlines():
        try:
            entry = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            continue
        if isinstance(entry, dict) and entry.get("logger") == "tessera.requests":
            lines.append(entry)
    return lines


def _titles(http: httpx.Client, auth: dict[str, str]) -> set[str]:
    titles: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/v1/tasks", params=params, headers=auth).json()
        titles |= {task["title"] for task in page["items"]}
        if (cursor := page["next_cursor"]) is None:
            return titles


@pytest.mark.slow
def test_sigterm_under_load_answers_every_request_it_took_and_loses_nothing(tmp_path: Path) -> None:
    env = clean_env(
        TESSERA_PROFILE="dev",
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        TESSERA_SECURITY__PASSWORD_HASH__MEMORY_KIB="8192",
        TESSERA_SERVER__LOG_FORMAT="json",
        TESSERA_SERVER__DRAIN_SECONDS=str(DRAIN_SECONDS),
        TESSERA_SERVER__SHUTDOWN_GRACE_SECONDS="10",
    )
    subprocess.run([TESSERA, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "first.log"
    with server_process(env, "--port", str(port), log=log) as process, httpx.Client(base_url=base) as http:
        wait_until_ready(base, process=process)
        _, ada = register_and_log_in(http, "Ada")
        bob_id, bob = register_and_log_in(http, "Bob")
        writers = [Writer(base, ada, bob_id, f"w{n}") for n in range(WRITERS)]
        for writer in writers:
            writer.start()
        eventually(
            lambda: sum(len(w.acknowledged) for w in writers) >= 30 or None, within=30, what="30 writes"
        )

        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        with httpx.Client(base_url=base, timeout=5) as probe:  # a new connection: the listener is open
            ready = probe.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["code"] == "health.not_ready"
        during_drain = sum(len(w.acknowledged) for w in writers)
        eventually(
            lambda: sum(len(w.acknowledged) for w in writers) > during_drain or None,
            within=DRAIN_SECONDS,
            what="writes answered while draining",
        )

        process.wait(timeout=DRAIN_SECONDS + 10 + 10)  # the drain, uvicorn's grace, the app's shutdown
        stopped_after = time.monotonic() - signalled
        for writer in writers:
            writer.join(timeout=30)
        assert not any(writer.is_alive() for writer in writers)

    assert stopped_after >= DRAIN_SECONDS  # the listener stayed open through the drain
    acknowledged = {title for w in writers for title in w.acknowledged}
    refused = {title for w in writers for title in w.refused}
    assert [t for w in writers for t in w.answered_otherwise] == []
    assert len(acknowledged) > 30
    # Every task request the server read, it answered 201 (it logs each one as it answers it).
    posted = [e for e in _request_lines(log) if e["method"] == "POST" and e["route"] == "/api/v1/tasks"]
    assert sorted(e["status"] for e in posted) == [201] * len(acknowledged)
    assert not [e for e in _request_lines(log) if e["status"] >= 500 and e["route"] != "/health/ready"]

    # After a restart: every acknowledged write is there, nothing refused was half-written,
    # and every TaskAssigned the server committed became Bob's notification.
    with server_process(env, "--port", str(port), log=tmp_path / "second.log") as process:
        wait_until_ready(base, process=process)
        with httpx.Client(base_url=base, timeout=10) as http:
            titles = _titles(http, ada)
            assert acknowledged <= titles
            assert not refused & titles
            eventually(
                lambda: (
                    http.get("/api/v1/notifications/unread-count", headers=bob).json()["unread"]
                    == len(acknowledged)
                    or None
                ),
                within=15,
                what=f"{len(acknowledged)} notifications for Bob",
            )
