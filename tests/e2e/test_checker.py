"""A Jepsen-style queue check: a concurrent workload under faults, then a verdict from the databases.

Client threads create tasks, reassign them (as their owner), move their status (as their
assignee) and race several creates with one Idempotency-Key, while a nemesis kills Tessera
processes with SIGKILL (restarting all but the last with a crash point armed, so that they
die again at the event system's most delicate moments) and cuts the broker's connections
for a second at a time.
Every operation's outcome is recorded: ok (2xx), failed (4xx) or indeterminate (no answer,
or a 5xx while something was down).

Once the faults are over and everything runs again, the checker compares what was
committed (the tasks outbox) with what the consumer made of it (the notifications rows):
no event lost, none unexpected, none with two effects. It also folds each task's events in
outbox order and demands that they give exactly the state the tasks table holds, and that
every acknowledged answer is one of the states that history went through.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from app.kernel.faults import CRASH_EXIT_CODE
from tests.e2e.events import (
    Ledger,
    Processes,
    User,
    broker_proxy,
    events_section,
    hex_id,
    ledger,
    monolith,
    register,
    require_broker,
    split,
    wait_for,
)
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

USERS = 4
THREADS = 4  # one per user: thread i acts as users[i]
OPS_PER_THREAD = 45
BURST_AT = (6, 14, 22, 30)  # thread i races a same-key create from its BURST_AT[i]-th operation
BURST_SIZE = 4  # concurrent requests with one Idempotency-Key
PACE_SECONDS = (0.15, 0.35)  # between a thread's operations
INDETERMINATE_PAUSE_SECONDS = 1.0  # more, after an operation got no answer
CLIENT_TIMEOUT_SECONDS = 3.0
NEMESIS_PAUSE_SECONDS = (1.0, 2.0)  # between faults
CUT_SECONDS = 1.0  # how long the broker stays unreachable
SETTLE_SECONDS = 60.0  # for every outbox to drain and every effect to exist, after the faults
RECHECK_SECONDS = 3.0  # more than ack_wait_seconds (2.0): an unacknowledged message is redelivered
WORKLOAD_SECONDS = 90.0  # bound on the workload and the nemesis threads

TODO, IN_PROGRESS, DONE, CANCELLED = "todo", "in_progress", "done", "cancelled"
# The domain's ALLOWED_TRANSITIONS, as the checker expects the events to follow them.
ALLOWED = {
    TODO: {IN_PROGRESS, DONE, CANCELLED},
    IN_PROGRESS: {TODO, DONE, CANCELLED},
    DONE: {TODO, IN_PROGRESS},
    CANCELLED: {TODO},
}
# Where a restarted process may be armed to die (the N-th time it gets there), per process.
CRASH_POINTS = {
    "monolith": ("relay.after_publish", "inbox.after_commit", "relay.before_publish"),
    "tasks": ("relay.after_publish", "relay.before_publish"),
    "notifications": ("inbox.after_commit",),
}


# -- what the clients saw ------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One client operation and its outcome."""

    kind: str  # create | reassign | status | same-key
    actor: str  # the user's id
    request: dict[str, Any]
    outcome: str  # ok | failed | indeterminate
    code: int | None  # HTTP status; None when no answer came
    task_id: str | None  # the task acted on, or created (dashed UUID)
    answer: dict[str, Any] | None = None  # the task as acknowledged (ok only)
    key: str | None = None  # the Idempotency-Key (same-key only)
    seconds: float = 0.0  # how long it took to answer (or to fail)


# -- what the databases hold ---------------------------------------------------------------


class Event(NamedTuple):
    position: int  # the outbox id: commit order
    event_id: str  # 32 hex digits, as stored
    type: str  # TaskCreated, TaskAssigned, ...
    payload: dict[str, Any]  # as published: dashed UUIDs


class Row(NamedTuple):
    assignee_id: str | None  # 32 hex digits
    status: str
    version: int
    title: str


class Effect(NamedTuple):
    event_id: str
    user_id: str
    task_id: str


class State(NamedTuple):
    assignee_id: str | None  # 32 hex digits
    status: str


@dataclass
class Truth:
    book: Ledger
    events: list[Event]  # the tasks outbox, in id order
    tasks: dict[str, Row]  # task id (hex) -> the stored task
    keys: dict[str, str]  # Idempotency-Key -> task id (hex)
    effects: list[Effect]  # every notification made
    lag_seconds: float = 0.0  # the longest an event took from its commit to its consumer's inbox


def read_truth(processes: Processes) -> Truth:
    book = ledger(processes)
    with processes.database("tasks") as db:
        events = [
            Event(position, str(event_id), str(event_type).split(".")[1], json.loads(payload))
            for position, event_id, event_type, payload in db.execute(
                "SELECT id, event_id, event_type, payload FROM outbox ORDER BY id"
            )
        ]
        tasks = {
            str(id_): Row(assignee and str(assignee), str(status), int(version), str(title))
            for id_, assignee, status, version, title in db.execute(
                "SELECT id, assignee_id, status, version, title FROM tasks"
            )
        }
        keys = {str(key): str(task) for key, task in db.execute("SELECT key, task_id FROM idempotency_keys")}
        occurred = dict(db.execute("SELECT event_id, occurred_at FROM outbox"))
    with processes.database("notifications") as db:
        effects = [
            Effect(str(e), str(u), str(t))
            for e, u, t in db.execute("SELECT event_id, user_id, task_id FROM notifications")
        ]
        handled = dict(db.execute("SELECT event_id, handled_at FROM inbox"))
    lags = [
        (datetime.fromisoformat(handled[e]) - datetime.fromisoformat(occurred[e])).total_seconds()
        for e in handled.keys() & occurred.keys()
    ]
    return Truth(book, events, tasks, keys, effects, max(lags, default=0.0))


# -- the checker ---------------------------------------------------------------------------


@dataclass
class Verdict:
    committed: int  # events that should notify someone
    delivered: int  # of those, how many did
    lost: set[str]
    unexpected: set[str]
    duplicated: dict[str, int]
    problems: list[str] = field(default_factory=list)  # events <-> state <-> acknowledged answers
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return not (self.lost or self.unexpected or self.duplicated or self.problems)

    def summary(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.stats.items())
        return (
            f"committed={self.committed} delivered={self.delivered} lost={len(self.lost)} "
            f"unexpected={len(self.unexpected)} duplicated={len(self.duplicated)} "
            f"inconsistent={len(self.problems)} {extra}"
        )


def _hex(value: str | None) -> str | None:
    return None if value is None else hex_id(value)


def fold(events: list[Event]) -> tuple[dict[str, list[State]], set[str], list[str]]:
    """Each task's states by version (index 0 is version 1), the deleted tasks, and broken chains.

    A creation is TaskCreated, then (with an assignee) a TaskAssigned from nobody by the owner;
    every later event is one change: one version more.
    """
    history: dict[str, list[State]] = {}
    deleted: set[str] = set()
    creating: dict[str, str] = {}  # task -> the assignee its creation's TaskAssigned must name
    problems: list[str] = []
    for event in events:
        p = event.payload
        task = hex_id(p["task_id"])
        where = f"{event.type} #{event.position} of task {task}"
        if event.type == "TaskCreated":
            if task in history:
                problems.append(f"{where}: the task was created before")
            history[task] = [State(_hex(p["assignee_id"]), TODO)]
            if p["assignee_id"] is not None:
                creating[task] = hex_id(p["assignee_id"])
            continue
        if task not in history:
            problems.append(f"{where}: no TaskCreated before it")
            continue
        if task in deleted:
            problems.append(f"{where}: after the task's TaskDeleted")
        states = history[task]
        if (assignee := creating.pop(task, None)) is not None:
            if (
                event.type == "TaskAssigned"
                and p["previous_assignee_id"] is None
                and _hex(p["assignee_id"]) == assignee
                and p["assigned_by"] == p["owner_id"]
            ):
                continue  # part of the creation: no new version
            problems.append(f"{where}: the creation's TaskAssigned to {assignee} is missing")
        current = states[-1]
        if event.type == "TaskAssigned":
            if _hex(p["previous_assignee_id"]) != current.assignee_id:
                problems.append(
                    f"{where}: from {p['previous_assignee_id']}, but the task was {current.assignee_id}'s"
                )
            if _hex(p["assignee_id"]) == current.assignee_id:
                problems.append(f"{where}: assigns it to whom it already was")
            states.append(State(_hex(p["assignee_id"]), current.status))
        elif event.type == "TaskStatusChanged":
            if p["previous_status"] != current.status:
                problems.append(f"{where}: from {p['previous_status']}, but the task was {current.status}")
            if p["status"] not in ALLOWED.get(current.status, set()):
                problems.append(f"{where}: {current.status} -> {p['status']} is not allowed")
            if _hex(p["assignee_id"]) != current.assignee_id:
                problems.append(f"{where}: names assignee {p['assignee_id']}, not {current.assignee_id}")
            states.append(State(current.assignee_id, p["status"]))
        elif event.type == "TaskDeleted":
            deleted.add(task)
        else:
            problems.append(f"{where}: an event type the checker does not know")
    problems += [f"task {task}: TaskCreated without its TaskAssigned to {a}" for task, a in creating.items()]
    return history, deleted, problems


def check(ops: list[Op], truth: Truth) -> Verdict:
    """The verdict on one run: delivery (lost, unexpected, duplicated) and consistency."""
    book = truth.book
    verdict = Verdict(
        committed=len(book.committed),
        delivered=len(set(book.committed) & set(book.effects)),
        lost=book.lost,
        unexpected=book.unexpected,
        duplicated=book.duplicated,
    )
    problems = verdict.problems
    history, deleted, broken = fold(truth.events)
    problems += broken

    # The events, folded, are the state: no committed change without its event, no event without it.
    for task, row in truth.tasks.items():
        states = history.get(task)
        if states is None:
            problems.append(f"task {task} exists without a TaskCreated event")
            continue
        if task in deleted:
            problems.append(f"task {task} exists after its TaskDeleted event")
        if states[-1] != State(row.assignee_id, row.status):
            problems.append(f"task {task}: its events give {states[-1]}, the table {row[:2]}")
        if len(states) != row.version:
            problems.append(f"task {task}: {len(states) - 1} changes in events, version {row.version}")
    problems += [
        f"task {task} was created (TaskCreated) but neither exists nor was deleted"
        for task in history.keys() - truth.tasks.keys() - deleted
    ]
    titles = Counter(e.payload["title"] for e in truth.events if e.type == "TaskCreated")
    problems += [
        f"{n} TaskCreated events for the one create titled {t!r}" for t, n in titles.items() if n > 1
    ]

    # Each effect is the right one: to the assignee, or to the owner, about the event's task.
    by_id = {e.event_id: e for e in truth.events}
    for effect in truth.effects:
        if (event := by_id.get(effect.event_id)) is None:
            continue  # counted as unexpected
        p = event.payload
        to = p["assignee_id"] if event.type == "TaskAssigned" else p["owner_id"]
        if (effect.user_id, effect.task_id) != (_hex(to), hex_id(p["task_id"])):
            problems.append(f"notification of {event.type} #{event.position} went to the wrong user or task")

    # Every acknowledged answer is a state its task went through, at the version it was told.
    for op in ops:
        if op.outcome == "failed" and op.kind == "create" and titles[op.request["title"]]:
            problems.append(f"a create refused with {op.code} happened all the same: {op.request['title']!r}")
        if op.outcome != "ok" or op.answer is None:
            continue
        task = hex_id(op.answer["id"])
        if task not in truth.tasks:
            problems.append(f"{op.kind} of task {task} was acknowledged ({op.code}); the task is gone")
            continue
        version = int(op.answer["version"])
        told = State(_hex(op.answer["assignee_id"]), op.answer["status"])
        states = history.get(task, [])
        if not 1 <= version <= len(states) or states[version - 1] != told:
            problems.append(
                f"{op.kind} of task {task} acknowledged {told} at version {version}; not in history"
            )

    # Racing creates with one Idempotency-Key made one task: the losers' events never appeared.
    groups: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.key is not None:
            groups[op.key].append(op)
    replayed = 0
    for key, group in groups.items():
        answered = {hex_id(op.answer["id"]) for op in group if op.answer is not None}
        replayed += sum(1 for op in group if op.answer is not None) - len(answered)
        stored = truth.keys.get(key)
        if len(answered) > 1 or (answered and answered != {stored}):
            problems.append(f"Idempotency-Key {key}: answers name {answered}, the key holds {stored}")
        if titles[group[0].request["title"]] != (1 if stored else 0):
            problems.append(f"Idempotency-Key {key}: {titles[group[0].request['title']]} TaskCreated events")

    outcomes = Counter(op.outcome for op in ops)
    verdict.stats = {
        "events": len(truth.events),
        "tasks": len(truth.tasks),
        "ops": len(ops),
        "ok": outcomes["ok"],
        "failed": outcomes["failed"],
        "indeterminate": outcomes["indeterminate"],
        "same_key_replays": replayed,
        "slowest_op_ms": round(1000 * max((op.seconds for op in ops), default=0.0)),
        "max_lag_ms": round(1000 * truth.lag_seconds),
    }
    return verdict


# -- the workload --------------------------------------------------------------------------


@dataclass
class Known:
    owner: int
    assignee: int | None
    status: str
    version: int


class Board:
    """What the clients believe of the tasks, from the answers they got (newest version wins)."""

    def __init__(self, users: list[User]) -> None:
        self.users = users
        self._index = {user.id: n for n, user in enumerate(users)}
        self._lock = threading.Lock()
        self._tasks: dict[str, Known] = {}

    def learn(self, answer: dict[str, Any]) -> None:
        with self._lock:
            known = self._tasks.get(answer["id"])
            if known is not None and known.version >= answer["version"]:
                return
            self._tasks[answer["id"]] = Known(
                owner=self._index[answer["owner_id"]],
                assignee=self._index.get(answer["assignee_id"] or ""),
                status=answer["status"],
                version=answer["version"],
            )

    def owned_by(self, user: int) -> list[str]:
        with self._lock:
            return [task for task, known in self._tasks.items() if known.owner == user]

    def assigned_to(self, user: int) -> list[tuple[str, str]]:
        with self._lock:
            return [(task, k.status) for task, k in self._tasks.items() if k.assignee == user]


def _call(
    http: httpx.Client, method: str, url: str, *, kind: str, actor: User, body: dict[str, Any], **extra: Any
) -> Op:
    task_id, key = extra.get("task_id"), extra.get("key")
    headers = actor.auth | ({"Idempotency-Key": key} if key else {})
    began = time.monotonic()
    try:
        response = http.request(method, url, json=body, headers=headers)
    except httpx.TransportError:  # refused, reset, timed out: it may or may not have happened
        return Op(
            kind, actor.id, body, "indeterminate", None, task_id, key=key, seconds=time.monotonic() - began
        )
    seconds = time.monotonic() - began
    code = response.status_code
    if code >= 500:  # a process (or the gateway's way to it) was down
        return Op(kind, actor.id, body, "indeterminate", code, task_id, key=key, seconds=seconds)
    if code >= 300:
        return Op(kind, actor.id, body, "failed", code, task_id, key=key, seconds=seconds)
    answer = response.json()
    return Op(kind, actor.id, body, "ok", code, answer["id"], answer, key, seconds)


def same_key_burst(base: str, actor: User, assignee: User, board: Board) -> list[Op]:
    """BURST_SIZE identical creates with one Idempotency-Key, released at once."""
    key = f"race-{uuid.uuid4().hex[:12]}"
    body = {"title": f"same key {key}", "assignee_id": assignee.id}
    start = threading.Barrier(BURST_SIZE)

    def one() -> Op:
        with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_SECONDS) as http:
            start.wait(timeout=10)
            return _call(http, "POST", "/api/v1/tasks", kind="same-key", actor=actor, body=body, key=key)

    with ThreadPoolExecutor(BURST_SIZE) as pool:
        ops = [f.result(timeout=30) for f in [pool.submit(one) for _ in range(BURST_SIZE)]]
    for op in ops:
        if op.answer:
            board.learn(op.answer)
    return ops


def client(base: str, me: int, board: Board, rng: random.Random) -> list[Op]:
    users = board.users
    actor = users[me]
    others = [u for n, u in enumerate(users) if n != me]
    ops: list[Op] = []
    raced = False
    with httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT_SECONDS) as http:
        for n in range(OPS_PER_THREAD):
            if not raced and n >= BURST_AT[me] and ops[-1].outcome != "indeterminate":  # while up
                ops += same_key_burst(base, actor, rng.choice(others), board)
                raced = True
            owned, mine = board.owned_by(me), board.assigned_to(me)
            roll = rng.random()
            if mine and roll < 0.4:  # move the status of a task assigned to me
                task, status = rng.choice(mine)
                target = rng.choice(
                    [s for s in (TODO, IN_PROGRESS, DONE) if s != status] + [CANCELLED] * (rng.random() < 0.1)
                )
                op = _call(
                    http,
                    "PATCH",
                    f"/api/v1/tasks/{task}",
                    kind="status",
                    actor=actor,
                    body={"status": target},
                    task_id=task,
                )
            elif owned and roll < 0.7:  # reassign a task I own: to nobody, to myself, to another
                task = rng.choice(owned)
                pick = rng.random()
                assignee = None if pick < 0.15 else actor.id if pick < 0.3 else rng.choice(others).id
                op = _call(
                    http,
                    "PATCH",
                    f"/api/v1/tasks/{task}",
                    kind="reassign",
                    actor=actor,
                    body={"assignee_id": assignee},
                    task_id=task,
                )
            else:
                body = {"title": f"u{me} op{n} {uuid.uuid4().hex[:6]}", "assignee_id": rng.choice(others).id}
                op = _call(http, "POST", "/api/v1/tasks", kind="create", actor=actor, body=body)
            ops.append(op)
            if op.answer:
                board.learn(op.answer)
            pause = rng.uniform(*PACE_SECONDS)
            time.sleep(pause + (INDETERMINATE_PAUSE_SECONDS if op.outcome == "indeterminate" else 0))
    return ops


# -- the processes and the nemesis ---------------------------------------------------------


class Cast:
    """The processes, started and restarted with their stderr read (and kept) as they run."""

    def __init__(self, processes: Processes) -> None:
        self.processes = processes
        self.logs: dict[str, list[str]] = defaultdict(list)
        self.armed: set[str] = set()  # running with a crash point armed
        self.runs: Counter[str] = Counter()

    def start(self, name: str, crash_at: str | None = None) -> bool:
        """Start ``name`` (armed to die at ``crash_at``); False if it died there before it was ready.

        Then it is started again, disarmed: a process that is down stays down only while a
        fault says so.
        """
        self.runs[name] += 1
        label = f"{name}#{self.runs[name]}" + (f" ({crash_at})" if crash_at else "")
        try:
            self.processes.start(name, crash_at=crash_at)
        except pytest.fail.Exception as exc:
            if crash_at is None:
                raise
            self.logs[name].append(f"{label}: died while starting: {exc}")
            self.processes.wait_crashed(name, seconds=5)  # at its crash point, before it was ready
            self.start(name)
            return False
        self.armed.discard(name)
        if crash_at:
            self.armed.add(name)
        process = self.processes.processes[name]
        threading.Thread(target=self._read, args=(label, name, process), daemon=True).start()
        return True

    def _read(self, label: str, name: str, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.logs[name].append(f"{label}: {line.decode(errors='replace').rstrip()}")

    def running(self, name: str) -> bool:
        process = self.processes.processes.get(name)
        return process is not None and process.poll() is None

    def reap(self, name: str) -> bool:
        """Take note of a process that died at its crash point; True if it had."""
        process = self.processes.processes.get(name)
        if process is None or process.poll() is None:
            return False
        assert process.returncode == CRASH_EXIT_CODE, f"{name} exited with {process.returncode}"
        self.processes.wait_crashed(name, seconds=1)
        self.armed.discard(name)
        return True

    def kill(self, name: str) -> None:
        if not self.reap(name) and name in self.processes.processes:
            self.processes.kill(name)
        self.armed.discard(name)

    def ensure_running(self) -> list[str]:
        """Everything up, and no crash point left armed; what had to be done."""
        done = []
        for name in self.processes.ports:
            if self.reap(name):
                done.append(f"{name} had crashed")
            if name in self.armed:
                began = time.monotonic()
                self.processes.stop(name)  # SIGTERM: a graceful stop, to restart it disarmed
                self.armed.discard(name)
                done.append(f"{name} stopped (SIGTERM: disarmed) in {time.monotonic() - began:.1f}s")
            if not self.running(name):
                began = time.monotonic()
                self.start(name)
                done.append(f"{name} started in {time.monotonic() - began:.1f}s")
        return done

    def tail(
        self, lines: int = 40, *, interesting: tuple[str, ...] = ('"warning"', '"error"', "crash")
    ) -> str:
        out = []
        for name, log in self.logs.items():
            picked = [line for line in log if any(word in line for word in interesting)]
            out += [
                f"--- {name}: {len(log)} lines, {len(picked)} warnings/errors; the last:",
                *picked[-lines:],
            ]
        return "\n".join(out)


def plan_of(topology: str, proxy: TcpProxy | None) -> list[str]:
    """The faults, in order: a process to kill and restart, or 'cut' the broker for a while."""
    if topology == "split":
        kills = ["tasks", "notifications", "tasks", "notifications"]
        return kills if proxy is None else ["tasks", "cut", "notifications", "cut", "tasks", "notifications"]
    kills = ["monolith"] * 4
    return kills if proxy is None else ["monolith", "cut", "monolith", "cut", "monolith", "cut"]


def nemesis(cast: Cast, proxy: TcpProxy | None, plan: list[str], rng: random.Random) -> list[str]:
    """Each fault of the plan after a pause; meanwhile, restart what died at its crash point."""
    done: list[str] = []
    began = time.monotonic()

    def note(what: str) -> None:
        done.append(f"t+{time.monotonic() - began:.1f}s {what}")

    last_kill = max(n for n, step in enumerate(plan) if step != "cut")
    arming = {name: itertools.cycle(points) for name, points in CRASH_POINTS.items()}
    for n, step in enumerate(plan):
        pause_until = time.monotonic() + rng.uniform(*NEMESIS_PAUSE_SECONDS)
        while time.monotonic() < pause_until:
            for name in cast.processes.ports:
                if cast.reap(name):
                    note(f"{name} died at its crash point")
                    cast.start(name)
            time.sleep(0.1)
        if step == "cut":
            assert proxy is not None
            proxy.cut()
            note("broker cut")
            time.sleep(CUT_SECONDS)
            proxy.restore()
            continue
        cast.kill(step)
        note(f"kill -9 {step}")
        time.sleep(0.2)
        # Every restart but the last is armed to die again, at the process's crash points in turn.
        crash_at = f"{next(arming[step])}:{rng.randint(2, 6)}" if n < last_kill else None
        if not cast.start(step, crash_at=crash_at):
            note(f"{step} restarted, died at {crash_at} while starting, restarted disarmed")
        elif crash_at:
            note(f"{step} restarted, armed to die at {crash_at}")
    return done


# -- the test ------------------------------------------------------------------------------

CASES = [
    pytest.param("inprocess", "monolith", id="inprocess"),
    pytest.param("nats", "monolith", id="nats"),
    pytest.param("rabbitmq", "monolith", id="rabbitmq"),
    pytest.param("nats", "split", id="nats-split"),
]


@contextmanager
def deployment(tmp_path: Path, bus: str, topology: str) -> Iterator[tuple[Processes, TcpProxy | None]]:
    with broker_proxy(bus) as proxy:
        topo: Callable[[Path, str], AbstractContextManager[Processes]] = (
            split if topology == "split" else monolith
        )
        with topo(tmp_path, events_section(bus, proxy)) as processes:
            yield processes, proxy


class Run(NamedTuple):
    ops: list[Op]
    faults: list[str]
    clients_seconds: float
    nemesis_seconds: float


def run(processes: Processes, proxy: TcpProxy | None, topology: str, cast: Cast, rng: random.Random) -> Run:
    """Clients and the nemesis at once, both bounded; then everything running again, disarmed."""
    with httpx.Client(base_url=processes.public, timeout=10) as http:
        board = Board([register(http, f"User{n}") for n in range(USERS)])
    began = time.monotonic()
    with ThreadPoolExecutor(THREADS + 1) as pool:
        clients = [
            pool.submit(client, processes.public, n, board, random.Random(rng.random()))
            for n in range(THREADS)
        ]
        faults = pool.submit(nemesis, cast, proxy, plan_of(topology, proxy), random.Random(rng.random()))
        deadline = began + WORKLOAD_SECONDS
        ops = [op for f in clients for op in f.result(timeout=max(1.0, deadline - time.monotonic()))]
        clients_seconds = time.monotonic() - began
        done = faults.result(timeout=max(1.0, deadline - time.monotonic()))
        nemesis_seconds = time.monotonic() - began
    if proxy is not None:
        proxy.restore()
    return Run(ops, done + cast.ensure_running(), clients_seconds, nemesis_seconds)


@pytest.mark.parametrize(("bus", "topology"), CASES)
def test_under_faults_every_committed_event_has_exactly_one_effect(
    tmp_path: Path, bus: str, topology: str
) -> None:
    require_broker(bus)
    began = time.monotonic()
    # The seed fixes the clients' and the nemesis's choices, not the threads' timing.
    seed = int(os.environ.get("TESSERA_CHECKER_SEED") or random.randrange(2**32))
    with deployment(tmp_path, bus, topology) as (processes, proxy):
        cast = Cast(processes)
        history: Run | None = None
        try:
            for name in processes.ports:
                cast.start(name)
            history = run(processes, proxy, topology, cast, random.Random(seed))
            recovered = time.monotonic()

            def settled() -> bool:
                book = ledger(processes)
                return book.pending == 0 and not book.lost

            wait_for(settled, seconds=SETTLE_SECONDS, what="every outbox drained and every event's effect")
            settling = time.monotonic() - recovered
            first = check(history.ops, read_truth(processes))
            time.sleep(RECHECK_SECONDS)  # a redelivery still on its way must find the effect made
            verdict = check(history.ops, read_truth(processes))
        except BaseException:
            print(f"\n{bus}/{topology} seed={seed}: failed; the processes' warnings:\n{cast.tail()}")
            if history is not None:  # the verdict as it stands, if the databases can tell
                with contextlib.suppress(Exception):
                    unsettled = check(history.ops, read_truth(processes))
                    print(f"{bus}/{topology} as it stands: {unsettled.summary()}")
                    print(f"lost: {sorted(unsettled.lost)[:10]}\nproblems: {unsettled.problems[:10]}")
            raise
        absorbed = sum("already handled" in line for log in cast.logs.values() for line in log)

    print(
        f"\n{bus}/{topology}: {verdict.summary()} redeliveries_absorbed={absorbed} seed={seed}"
        f"\n  clients {history.clients_seconds:.1f}s, nemesis {history.nemesis_seconds:.1f}s, "
        f"settling {settling:.1f}s, total {time.monotonic() - began:.1f}s"
        f"\n  faults: {'; '.join(history.faults)}"
    )
    if not verdict.valid:
        print(f"problems: {verdict.problems[:20]}\nlost: {sorted(verdict.lost)[:10]}")
        print(
            f"unexpected: {sorted(verdict.unexpected)[:10]}\nduplicated: {verdict.duplicated}\n{cast.tail()}"
        )
    assert verdict.valid, verdict.summary()
    assert (first.committed, first.delivered) == (verdict.committed, verdict.delivered)
    assert verdict.committed > 40, "the workload committed too little to judge"


# -- the checker itself, on made-up histories ----------------------------------------------

ADA, BOB, TASK = (str(uuid.UUID(int=n)) for n in (1, 2, 3))


def _event(position: int, type_: str, **payload: Any) -> Event:
    base = {"task_id": TASK, "owner_id": ADA, "title": "t"}
    return Event(position, uuid.UUID(int=100 + position).hex, type_, base | payload)


def _truth() -> Truth:
    """Ada creates a task for Bob; Bob starts it. Everything delivered once."""
    events = [
        _event(1, "TaskCreated", assignee_id=BOB),
        _event(2, "TaskAssigned", assignee_id=BOB, previous_assignee_id=None, assigned_by=ADA),
        _event(
            3, "TaskStatusChanged", assignee_id=BOB, changed_by=BOB, previous_status=TODO, status=IN_PROGRESS
        ),
    ]
    notifying = {events[1].event_id: "TaskAssigned", events[2].event_id: "TaskStatusChanged"}
    return Truth(
        book=Ledger(committed=notifying, effects=Counter(list(notifying))),
        events=events,
        tasks={hex_id(TASK): Row(hex_id(BOB), IN_PROGRESS, 2, "t")},
        keys={},
        effects=[
            Effect(events[1].event_id, hex_id(BOB), hex_id(TASK)),
            Effect(events[2].event_id, hex_id(ADA), hex_id(TASK)),
        ],
    )


def _acknowledged(version: int, assignee: str | None, status: str) -> Op:
    answer = {"id": TASK, "version": version, "assignee_id": assignee, "status": status}
    return Op("status", BOB, {"status": status}, "ok", 200, TASK, answer)


def test_the_checker_accepts_a_history_that_adds_up() -> None:
    verdict = check([_acknowledged(1, BOB, TODO), _acknowledged(2, BOB, IN_PROGRESS)], _truth())
    assert verdict.valid, verdict.problems
    assert (verdict.committed, verdict.delivered) == (2, 2)


def test_the_checker_sees_lost_unexpected_and_duplicated_effects() -> None:
    truth = _truth()
    assigned, started = (e.event_id for e in truth.events[1:])
    truth.book.effects = Counter({assigned: 2, uuid.UUID(int=999).hex: 1})  # started never arrived
    verdict = check([], truth)
    assert verdict.lost == {started}
    assert verdict.unexpected == {uuid.UUID(int=999).hex}
    assert verdict.duplicated == {assigned: 2}


@pytest.mark.parametrize(
    "corrupt",
    [
        pytest.param(lambda t: t.events.pop(), id="a change without its event"),
        pytest.param(lambda t: t.tasks.update({hex_id(TASK): Row(None, TODO, 3, "t")}), id="state off"),
        pytest.param(lambda t: t.events.append(t.events[0]._replace(position=4)), id="created twice"),
        pytest.param(lambda t: t.events.pop(1), id="the creation's assignment missing"),
        pytest.param(lambda t: t.tasks.clear(), id="an event without its task"),
        pytest.param(
            lambda t: t.effects.__setitem__(0, t.effects[0]._replace(user_id=hex_id(ADA))),
            id="notified the wrong user",
        ),
    ],
)
def test_the_checker_sees_events_and_state_disagree(corrupt: Callable[[Truth], object]) -> None:
    truth = _truth()
    corrupt(truth)
    assert check([], truth).problems


def test_the_checker_sees_an_acknowledged_answer_that_never_was() -> None:
    assert check([_acknowledged(2, None, IN_PROGRESS)], _truth()).problems
    assert check([_acknowledged(3, BOB, DONE)], _truth()).problems


def test_the_checker_sees_two_winners_of_one_idempotency_key() -> None:
    truth = _truth()
    truth.keys["k"] = hex_id(TASK)
    other = {"id": str(uuid.UUID(int=4)), "version": 1, "assignee_id": BOB, "status": TODO}
    ops = [
        Op("same-key", ADA, {"title": "t"}, "ok", 201, TASK, {**other, "id": TASK}, "k"),
        Op("same-key", ADA, {"title": "t"}, "ok", 201, other["id"], other, "k"),
    ]
    assert any("Idempotency-Key" in problem for problem in check(ops, truth).problems)
