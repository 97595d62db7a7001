"""Events survive crashes and broker outages: every committed event delivered, every effect once.

Each test runs against the in-process bus, NATS JetStream and RabbitMQ, with Tessera as a
real server process that dies at a crash point (``os._exit``, as a ``kill -9`` there would)
and is started again on the same data.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.events import (
    BACKENDS,
    Processes,
    User,
    broker_proxy,
    events_section,
    ledger,
    monolith,
    register,
    require_broker,
    split,
    wait_for,
)
from tests.servers import TESSERA

pytestmark = pytest.mark.slow


def assign(http: httpx.Client, owner: User, assignee: User, title: str) -> httpx.Response:
    return http.post("/api/v1/tasks", json={"title": title, "assignee_id": assignee.id}, headers=owner.auth)


def unread(http: httpx.Client, user: User) -> int:
    count: int = http.get("/api/v1/notifications/unread-count", headers=user.auth).json()["unread"]
    return count


def settle(app: Processes, http: httpx.Client, owner: User, assignee: User, expected: int) -> None:
    """Wait until ``assignee`` has ``expected`` notifications and every outbox is empty."""
    wait_for(lambda: unread(http, assignee) == expected, seconds=30, what=f"{expected} notifications")
    wait_for(lambda: ledger(app).pending == 0, seconds=30, what="every outbox drained")


# Where the process dies, per point: before the TaskAssigned event goes to the bus; after it
# went (and, in-process, was handled) but before it is marked published; in the consumer after
# its transaction committed but before the broker heard the acknowledgement.
CRASH_POINTS = ("relay.before_publish:2", "relay.after_publish:2", "inbox.after_commit")


# Each bus in the monolith, and the split topology (tasks and notifications in processes of
# their own) over NATS: there the relay's crash points kill the tasks process, the inbox's
# the notifications process.
TOPOLOGIES = [("monolith", bus) for bus in BACKENDS] + [("split", "nats")]


@pytest.mark.parametrize("point", CRASH_POINTS)
@pytest.mark.parametrize(("topology", "bus"), TOPOLOGIES)
def test_a_crash_loses_no_committed_event_and_repeats_no_effect(
    tmp_path: Path, topology: str, bus: str, point: str
) -> None:
    require_broker(bus)
    processes = monolith if topology == "monolith" else split
    victim = "monolith" if topology == "monolith" else "notifications" if "inbox" in point else "tasks"
    with processes(tmp_path, events_section(bus)) as app, httpx.Client(timeout=10) as http:
        app.start()
        http.base_url = httpx.URL(app.public)
        ada, bob = register(http, "Ada"), register(http, "Bob")
        wait_for(lambda: ledger(app).pending == 0, seconds=30, what="registrations published")
        app.stop(victim)

        app.start(victim, crash_at=point)
        # The process may die before it answers: the task is committed all the same.
        with contextlib.suppress(httpx.TransportError):
            assign(http, ada, bob, "before the crash")
        app.wait_crashed(victim)
        with app.database("tasks") as tasks:
            (committed,) = tasks.execute("SELECT count(*) FROM tasks").fetchone()
        assert committed == 1

        app.start(victim)
        assert assign(http, ada, bob, "after the restart").status_code == 201
        settle(app, http, ada, bob, expected=2)
        book = ledger(app)
        assert len(book.committed) == 2
        assert (book.lost, book.unexpected, book.duplicated) == (set(), set(), {})


@pytest.mark.parametrize(("topology", "bus"), [t for t in TOPOLOGIES if t[1] != "inprocess"])
def test_while_the_broker_is_down_writes_succeed_and_the_backlog_drains_after(
    tmp_path: Path, topology: str, bus: str
) -> None:
    require_broker(bus)
    processes = monolith if topology == "monolith" else split
    with (
        broker_proxy(bus) as proxy,
        processes(tmp_path, events_section(bus, proxy)) as app,
        httpx.Client(timeout=10) as http,
    ):
        assert proxy is not None
        app.start()
        http.base_url = httpx.URL(app.public)
        ada, bob = register(http, "Ada"), register(http, "Bob")
        settle(app, http, ada, bob, expected=0)

        proxy.cut()
        for n in range(10):
            assert assign(http, ada, bob, f"while the broker is away {n}").status_code == 201
        status = subprocess.run(
            [TESSERA, "events", "status"], env=app.env, capture_output=True, text=True, timeout=60, check=True
        )
        tasks_row = next(line.split() for line in status.stdout.splitlines() if line.startswith("tasks"))
        assert int(tasks_row[1]) > 0, status.stdout  # a backlog of pending events
        assert unread(http, bob) == 0

        proxy.restore()
        settle(app, http, ada, bob, expected=10)
        book = ledger(app)
        assert len(book.committed) == 10
        assert (book.lost, book.unexpected, book.duplicated) == (set(), set(), {})
