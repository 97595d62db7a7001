"""Account closure, killed at every step: the process dies (os._exit) before and after each step's
local commit and each compensation, restarts, and every closure still ends — completed or
compensated — with each effect exactly once. The truth is read from the modules' databases,
never from the API's answers.
"""

from __future__ import annotations

import re
import sqlite3
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import run_async
from tests.e2e.events import (
    Processes,
    User,
    events_section,
    hex_id,
    monolith,
    register,
    require_broker,
    split,
    wait_for,
)

pytestmark = pytest.mark.slow

STEPS = ("close_account", "hand_over_tasks", "erase_account", "delete_inbox", "erase_activity")
FORWARD = [f"saga.{step}.{when}" for step in STEPS for when in ("before", "after")]
BACKWARD = [f"saga.close_account.compensation.{when}" for when in ("before", "after")]
# Quick to resume: a dead orchestrator's lease lapses in a second.
SAGAS = "[sagas]\npoll_seconds = 0.2\nlease_seconds = 1.0\n"
OUTBOX_OF = "SELECT count(*) FROM outbox WHERE event_type ="
ADAS_TASKS = "FROM tasks WHERE title LIKE 'Ada''s %'"
DONE_OF = "SELECT count(*) FROM tasks WHERE owner_id = ? AND status = 'done'"


class Truth:
    """What the modules' databases hold: SQLite files in the data dir, or PostgreSQL schemas."""

    def __init__(self, processes: Processes, postgres_url: str | None = None) -> None:
        self._processes = processes
        self._postgres = (
            postgres_url.replace("postgresql+asyncpg://", "postgresql://") if postgres_url else None
        )

    def id(self, value: str) -> object:
        """An id as the backend stores it: 32 hex digits in SQLite, a uuid in PostgreSQL."""
        return uuid.UUID(value) if self._postgres else hex_id(value)

    def rows(self, module: str, sql: str, *args: object) -> list[tuple[object, ...]]:
        if self._postgres is None:
            with self._processes.database(module) as database:
                return [tuple(row) for row in database.execute(sql, args).fetchall()]
        numbers = iter(range(1, 99))
        numbered = re.sub(r"\?", lambda _: f"${next(numbers)}", sql)
        return run_async(self._postgres_rows(module, numbered, args))

    async def _postgres_rows(
        self, module: str, sql: str, args: tuple[object, ...]
    ) -> list[tuple[object, ...]]:
        import asyncpg

        connection = await asyncpg.connect(self._postgres, server_settings={"search_path": module})
        try:
            return [tuple(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    def files(self, module: str) -> bytes | None:
        """A SQLite module's database and write-ahead log, byte for byte (None on PostgreSQL)."""
        if self._postgres is not None:
            return None
        base = self._processes.data_dir / f"{module}.db"
        return b"".join(p.read_bytes() for p in (base, base.with_name(base.name + "-wal")) if p.exists())

    def one(self, module: str, sql: str, *args: object) -> tuple[object, ...]:
        (row,) = self.rows(module, sql, *args)
        return row

    def count(self, module: str, sql: str, *args: object) -> int:
        return int(self.one(module, sql, *args)[0])  # type: ignore[call-overload]


def _closure_ended(truth: Truth, user: User) -> str | None:
    found = truth.rows("accounts", "SELECT state FROM saga_runs WHERE key = ?", user.id)
    state = str(found[0][0]) if found else None
    return state if state in ("completed", "compensated") else None


def _start_closure(processes: Processes, user: User, successor: User) -> None:
    """POST the closure; the process may die before it answers (the saga starts at once)."""
    try:
        with httpx.Client(base_url=processes.public, timeout=15) as http:
            started = http.post(
                "/api/v1/account/closure", json={"successor_id": successor.id}, headers=user.auth
            )
        assert started.status_code == 202, started.text
    except httpx.TransportError:
        pass  # died answering: the saga log was written before


def _world(processes: Processes) -> tuple[User, User, User, list[str]]:
    """Ada owns two open tasks and one done; Carol assigned her one (so Ada has a notification)."""
    with httpx.Client(base_url=processes.public, timeout=15) as http:
        # Ada's name is one no id can hold (ids are hexadecimal): where it is found, it is hers.
        ada, bob, carol = register(http, "Ophelia"), register(http, "Bob"), register(http, "Carol")
        owned = [
            http.post("/api/v1/tasks", json={"title": f"Ada's {i}"}, headers=ada.auth).json()["id"]
            for i in range(2)
        ]
        done = http.post("/api/v1/tasks", json={"title": "finished"}, headers=ada.auth).json()["id"]
        http.patch(f"/api/v1/tasks/{done}", json={"status": "done"}, headers=ada.auth).raise_for_status()
        http.post("/api/v1/tasks", json={"title": "for Ada", "assignee_id": ada.id}, headers=carol.auth)
        wait_for(
            lambda: http.get("/api/v1/notifications/unread-count", headers=ada.auth).json()["unread"] == 1,
            seconds=10,
            what="Ada's notification",
        )
    return ada, bob, carol, owned


def _completed_once(truth: Truth, ada: User, bob: User, owned: list[str]) -> None:
    ada_id, bob_id = truth.id(ada.id), truth.id(bob.id)
    email, erased_at, closing = truth.one(
        "identity", "SELECT email, erased_at, closing_since FROM users WHERE id = ?", ada_id
    )
    assert email == f"erased-{ada.id}@invalid"
    assert erased_at is not None
    assert closing is not None
    assert truth.count("identity", f"{OUTBOX_OF} 'identity.AccountClosed.v1'") == 1
    assert truth.count("identity", "SELECT count(*) FROM outbox WHERE payload LIKE '%Ophelia%'") == 0
    assert truth.count("identity", "SELECT count(*) FROM refresh_tokens WHERE user_id = ?", ada_id) == 0
    if (raw := truth.files("identity")) is not None:  # not even in free pages or the log
        assert b"ophelia-" not in raw  # her e-mail
        assert b"Ophelia" not in raw
    assert dict(truth.rows("tasks", f"SELECT id, owner_id {ADAS_TASKS}")) == {
        truth.id(t): bob_id for t in owned
    }
    assert (
        truth.count("tasks", "SELECT count(*) FROM tasks WHERE owner_id = ? AND status = 'done'", ada_id) == 1
    )
    assert truth.count("tasks", "SELECT count(*) FROM tasks WHERE assignee_id = ?", ada_id) == 0
    assert truth.count("tasks", "SELECT count(*) FROM hand_overs") == 1
    assert truth.count("tasks", f"{OUTBOX_OF} 'tasks.TaskOwnerChanged.v1'") == 2
    wait_for(
        lambda: _handled_once(truth, ada_id, bob_id),
        seconds=10,
        what="Bob told once per task, Ada's inbox empty, her history erased",
    )


def _handled_once(truth: Truth, ada_id: object, bob_id: object) -> bool:
    theirs = truth.count("notifications", "SELECT count(*) FROM notifications WHERE user_id = ?", ada_id)
    handed = truth.count(
        "notifications",
        "SELECT count(*) FROM notifications WHERE user_id = ? AND kind = 'task_handed_over'",
        bob_id,
    )
    key = truth.one("activity", "SELECT length(key) FROM subject_keys WHERE subject = ?", ada_id)[0]
    owner_changes = truth.count(
        "activity", "SELECT count(*) FROM stored_events WHERE event_type = 'tasks.TaskOwnerChanged.v1'"
    )
    assert max(handed, owner_changes) <= 2, (handed, owner_changes)  # never twice
    return (theirs, handed, key, owner_changes) == (0, 2, 0, 2)


def _crash_and_complete(processes: Processes, truth: Truth, point: str, group: str) -> None:
    """Ada closes naming Bob; ``group``'s process dies at ``point``, restarts, and it completes once."""
    processes.start(crash_at=point)  # armed from the start: only the saga reaches its points
    ada, bob, _, owned = _world(processes)

    _start_closure(processes, ada, bob)
    processes.wait_crashed(group)
    processes.start(group)

    state = wait_for(lambda: _closure_ended(truth, ada), seconds=20, what="the closure ends")
    assert state == "completed"
    _completed_once(truth, ada, bob, owned)


@pytest.mark.parametrize("point", FORWARD)
def test_a_closure_killed_at_any_step_completes_once(tmp_path: Path, point: str) -> None:
    with monolith(tmp_path, events_section("inprocess") + SAGAS) as processes:
        _crash_and_complete(processes, Truth(processes), point, "monolith")


@pytest.mark.postgres
def test_a_closure_killed_after_the_hand_over_completes_once_on_postgres(
    tmp_path: Path, postgres_url: str
) -> None:
    with monolith(tmp_path, events_section("inprocess") + SAGAS, database_url=postgres_url) as processes:
        _crash_and_complete(
            processes, Truth(processes, postgres_url), "saga.hand_over_tasks.after", "monolith"
        )


def test_a_closure_killed_in_a_split_completes_once(tmp_path: Path) -> None:
    """Accounts runs in identity's group: that process dies after the pivot's local commit."""
    require_broker("nats")
    with split(tmp_path, events_section("nats") + SAGAS) as processes:
        _crash_and_complete(processes, Truth(processes), "saga.erase_account.after", "identity")


@pytest.mark.parametrize("point", BACKWARD)
def test_a_closure_killed_while_turning_back_reopens_once(tmp_path: Path, point: str) -> None:
    with monolith(tmp_path, events_section("inprocess") + SAGAS) as processes:
        processes.start(crash_at=point)
        ada, _, _, owned = _world(processes)
        with httpx.Client(base_url=processes.public, timeout=15) as http:
            dave = register(http, "Dave")
            http.post(f"/api/v1/users/{dave.id}/deactivate", headers=dave.auth).raise_for_status()

        _start_closure(processes, ada, dave)
        processes.wait_crashed("monolith")
        processes.start()

        truth = Truth(processes)
        state = wait_for(lambda: _closure_ended(truth, ada), seconds=20, what="the closure ends")
        assert state == "compensated"
        ada_id = truth.id(ada.id)
        found = truth.one("identity", "SELECT closing_since, erased_at FROM users WHERE id = ?", ada_id)
        assert found == (None, None)
        assert {owner for (owner,) in truth.rows("tasks", f"SELECT owner_id {ADAS_TASKS}")} == {ada_id}
        assert truth.count("tasks", "SELECT count(*) FROM hand_overs") == 0  # the refusal moved nothing
        assert len(owned) == 2


@pytest.mark.parametrize(
    "point", [f"saga.hand_over_tasks.compensation.{when}" for when in ("before", "after")]
)
def test_a_closure_killed_while_handing_the_work_back_ends_compensated_once(
    tmp_path: Path, point: str
) -> None:
    """The pivot refused: Ada's account was reopened while the process was down after the
    hand-over, so identity will not erase it; the saga hands the work back — killed there too."""
    with monolith(tmp_path, events_section("inprocess") + SAGAS) as processes:
        truth = Truth(processes)
        processes.start(crash_at="saga.hand_over_tasks.after")
        ada, bob, _, owned = _world(processes)
        _start_closure(processes, ada, bob)
        processes.wait_crashed("monolith")
        with sqlite3.connect(processes.data_dir / "identity.db") as identity:  # an operator reopens it
            identity.execute("UPDATE users SET closing_since = NULL WHERE id = ?", (hex_id(ada.id),))
        processes.start(crash_at=point)
        processes.wait_crashed("monolith")
        processes.start()

        state = wait_for(lambda: _closure_ended(truth, ada), seconds=20, what="the closure ends")
        assert state == "compensated"
        (reason,) = truth.one("accounts", "SELECT reason FROM saga_runs WHERE key = ?", ada.id)
        assert str(reason).startswith("erase_account: identity.account_not_closing")
        ada_id, bob_id = truth.id(ada.id), truth.id(bob.id)
        assert dict(truth.rows("tasks", f"SELECT id, owner_id {ADAS_TASKS}")) == {
            truth.id(t): ada_id for t in owned
        }
        assert truth.count("tasks", "SELECT count(*) FROM hand_overs WHERE handed_back IS NOT NULL") == 1
        assert truth.count("tasks", f"{OUTBOX_OF} 'tasks.TaskOwnerChanged.v1'") == 4  # there and back, once
        assert truth.one("identity", "SELECT erased_at FROM users WHERE id = ?", ada_id) == (None,)

        def told_once_each_way() -> bool:
            kinds = "SELECT count(*) FROM notifications WHERE user_id = ? AND kind = 'task_handed_over'"
            bobs, adas = (
                truth.count("notifications", kinds, bob_id),
                truth.count("notifications", kinds, ada_id),
            )
            assert max(bobs, adas) <= 2, (bobs, adas)
            return (bobs, adas) == (2, 2)

        wait_for(
            told_once_each_way, seconds=10, what="Bob told of each task once, and Ada of its return once"
        )
