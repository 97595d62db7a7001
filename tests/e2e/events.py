"""Harness for delivery tests: Tessera processes on a chosen bus, crashed and restarted at will,
and the truth read back from each module's own SQLite database.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.kernel.faults import CRASH_ENV, CRASH_EXIT_CODE
from tests.conftest import service_unavailable
from tests.e2e.cluster import GROUPS, migrate, write_config
from tests.servers import TEST_SERVER_CONFIG, clean_env, free_port, server_process, wait_until_ready
from tests.tcp_proxy import TcpProxy

BACKENDS = ("inprocess", "nats", "rabbitmq")
BROKER_PORTS = {"nats": 4222, "rabbitmq": 5672}


def require_broker(bus: str) -> None:
    """Skip (fail under CI) when the bus's broker does not listen on this machine."""
    if bus not in BROKER_PORTS:
        return
    try:
        socket.create_connection(("127.0.0.1", BROKER_PORTS[bus]), timeout=2).close()
    except OSError as exc:
        service_unavailable(f"{bus} broker on 127.0.0.1:{BROKER_PORTS[bus]} is not reachable: {exc}")


@contextmanager
def broker_proxy(bus: str) -> Iterator[TcpProxy | None]:
    """A cuttable TCP proxy in front of the bus's broker (None for the in-process bus)."""
    if bus not in BROKER_PORTS:
        yield None
        return
    with TcpProxy("127.0.0.1", BROKER_PORTS[bus]) as proxy:
        yield proxy


def events_section(bus: str, proxy: TcpProxy | None = None) -> str:
    """An [events] section: quick to react, a namespace of its own, the broker maybe behind a proxy."""
    lines = [
        "[events]",
        f'bus = "{bus}"',
        f'namespace = "t{uuid.uuid4().hex[:12]}"',
        "relay_poll_seconds = 0.1",
        "publish_timeout_seconds = 2.0",
        "backoff_initial_seconds = 0.05",
        "backoff_max_seconds = 0.5",
        "redelivery_delay_seconds = 0.2",
        "ack_wait_seconds = 2.0",
        "lease_seconds = 3.0",  # a crashed relay's claim lapses soon
    ]
    if proxy is not None and bus == "nats":
        lines.append(f'nats_url = "nats://127.0.0.1:{proxy.port}"')
    if proxy is not None and bus == "rabbitmq":
        lines.append(f'rabbitmq_url = "amqp://guest:guest@127.0.0.1:{proxy.port}/"')
    return "\n".join(lines) + "\n"


class Processes:
    """Tessera processes (one monolith, or one per group) that can crash, be killed and restart."""

    def __init__(self, env: dict[str, str], ports: dict[str, int], data_dir: Path, stack: ExitStack) -> None:
        self.env = env
        self.ports = ports
        self.data_dir = data_dir
        self._stack = stack
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def public(self) -> str:
        """The address clients use: the gateway in a split, the process itself in a monolith."""
        return self.url("gateway" if "gateway" in self.ports else "monolith")

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self, name: str | None = None, *, crash_at: str | None = None) -> None:
        names = [name] if name else list(self.ports)
        for each in names:
            env = {**self.env, **({CRASH_ENV: crash_at} if crash_at else {})}
            args = ["--port", str(self.ports[each])]
            if each != "monolith":
                args += ["--group", each]
            process = self._stack.enter_context(server_process(env, *args))
            self.processes[each] = process
            try:
                wait_until_ready(self.url(each), process=process)
            except pytest.fail.Exception:
                # Work resumed at start-up may reach the crash point before the first probe
                # is answered: the process died where it was told to, and wait_crashed says so.
                if crash_at is None or process.poll() != CRASH_EXIT_CODE:
                    raise

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        process = self.processes.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        process.wait(timeout=30)

    def wait_crashed(self, name: str, seconds: float = 20) -> None:
        """Until the process has died at its crash point."""
        process = self.processes.pop(name)
        try:
            code = process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.processes[name] = process
            pytest.fail(f"{name} did not reach its crash point within {seconds}s")
        assert code == CRASH_EXIT_CODE, f"{name} exited with {code}, not at a crash point"

    def database(self, module: str) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data_dir / f'{module}.db'}?mode=ro", uri=True, timeout=10)


@contextmanager
def monolith(tmp_path: Path, events: str, *, database_url: str | None = None) -> Iterator[Processes]:
    config = tmp_path / "monolith.toml"
    config.write_text(TEST_SERVER_CONFIG + events)
    data_dir = tmp_path / "data"
    env = clean_env(TESSERA_CONFIG=str(config), TESSERA_DATA_DIR=str(data_dir))
    if database_url:
        env["TESSERA_DATABASE__URL"] = database_url
    migrate(env)
    with ExitStack() as stack:
        yield Processes(env, {"monolith": free_port()}, data_dir, stack)


@contextmanager
def split(tmp_path: Path, events: str) -> Iterator[Processes]:
    ports = {group: free_port() for group in GROUPS}
    config = write_config(tmp_path / "topology.toml", ports, events=events)
    data_dir = tmp_path / "data"
    env = clean_env(TESSERA_CONFIG=str(config), TESSERA_DATA_DIR=str(data_dir))
    migrate(env)
    with ExitStack() as stack:
        yield Processes(env, ports, data_dir, stack)


# -- a client ----------------------------------------------------------------------------


@dataclass
class User:
    id: str
    auth: dict[str, str]


def register(http: httpx.Client, name: str) -> User:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    created = http.post(
        "/api/v1/users", json={"email": email, "password": "correct horse battery", "display_name": name}
    )
    assert created.status_code == 201, created.text
    tokens = http.post("/api/v1/auth/token", json={"email": email, "password": "correct horse battery"})
    assert tokens.status_code == 200, tokens.text
    return User(created.json()["id"], {"Authorization": f"Bearer {tokens.json()['access_token']}"})


def wait_for(condition: Any, *, seconds: float, what: str) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if answer := condition():
                return answer
        except (httpx.TransportError, sqlite3.OperationalError):
            pass  # a process restarting, a database being written: ask again
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        time.sleep(0.05)


# -- the truth, from the databases -------------------------------------------------------


def hex_id(value: str) -> str:
    """How SQLAlchemy's Uuid type stores an id on SQLite: 32 hex digits."""
    return uuid.UUID(value).hex


@dataclass
class Ledger:
    """What was committed (the publishers' outboxes) against what the consumer made of it."""

    committed: dict[str, str] = field(default_factory=dict)  # event id -> type, of events that notify
    effects: Counter[str] = field(default_factory=Counter)  # event id -> notifications it made
    pending: int = 0  # outbox rows not yet published, over every module

    @property
    def lost(self) -> set[str]:
        return set(self.committed) - set(self.effects)

    @property
    def unexpected(self) -> set[str]:
        return set(self.effects) - set(self.committed)

    @property
    def duplicated(self) -> dict[str, int]:
        return {event: n for event, n in self.effects.items() if n > 1}


def ledger(processes: Processes) -> Ledger:
    """Every committed event that should notify someone, and every notification made.

    By the notification rules: an assignment to someone other than the assigner, a status
    change by someone other than the owner.
    """
    import json

    book = Ledger()
    with processes.database("tasks") as tasks:
        for event_id, event_type, payload in tasks.execute(
            "SELECT event_id, event_type, payload FROM outbox"
        ):
            event = json.loads(payload)
            notifies = (
                event_type == "tasks.TaskAssigned.v1"
                and event["assignee_id"] is not None
                and event["assignee_id"] != event["assigned_by"]
            ) or (event_type == "tasks.TaskStatusChanged.v1" and event["changed_by"] != event["owner_id"])
            if notifies:
                book.committed[event_id] = event_type
        book.pending += tasks.execute("SELECT count(*) FROM outbox WHERE status != 'published'").fetchone()[0]
    with processes.database("identity") as identity:
        book.pending += identity.execute(
            "SELECT count(*) FROM outbox WHERE status != 'published'"
        ).fetchone()[0]
    with processes.database("notifications") as notifications:
        for (event_id,) in notifications.execute("SELECT event_id FROM notifications"):
            book.effects[event_id] += 1
    return book
