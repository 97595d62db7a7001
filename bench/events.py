"""The events benchmark: outbox -> bus -> inbox, end to end, per bus backend.

Run from the repository root::

    .venv/bin/python -m bench.events                       # every bus, SQLite, 2000 tasks
    .venv/bin/python -m bench.events --backend nats --events 500
    .venv/bin/python -m bench.events --database postgres  # or all: SQLite, then PostgreSQL
    .venv/bin/python -m bench --suite events ...           # the same, through the main harness

For each bus (``inprocess``, ``nats``, ``rabbitmq``) it starts one real ``tessera serve``
(monolith, one worker, a fresh data dir, ``[events] bus`` and a namespace of its own),
registers Ada and Bob over the public API, and then:

1. a warm-up of a few tasks;
2. the *unloaded* pass: tasks created one at a time, with a short pause between them, so
   every event crosses an idle pipeline (latency without queueing);
3. the *loaded* pass: ``--events`` tasks created by ``--concurrency`` clients as fast as the
   API takes them, until Bob's unread count says every notification arrived;
4. the *burst* pass: ``--burst`` TaskAssigned events (five per task, for a fifth as many
   tasks) committed into the tasks outbox in one transaction, as a module's bulk change
   would, and handled end to end: what the pipeline itself can carry, with no API in front.
   They are written straight into the tasks database (its outbox table, by the kernel's own
   table definition); the server's relay finds them on its next poll.

Every task is assigned by Ada to Bob, so each create commits two events (TaskCreated,
TaskAssigned) in the tasks outbox, and the TaskAssigned becomes exactly one notification.
After the server stopped, the timings come from its databases: an event's commit time is
its outbox row's ``occurred_at`` (taken just before the transaction, so it slightly
overstates the latency), its handled time is the notifications inbox's ``handled_at``, and
a relay round's end is the ``published_at`` it stamped on its batch. Server, client and
brokers share one machine and its clock. Correctness: every TaskAssigned event must have
exactly one notification (none lost, none duplicated), else the run fails.

Results: ``bench/results/events.md`` (replaced), and the same Markdown on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import os
import resource
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.loadgen import (
    CLK_TCK,
    RawClient,
    Request,
    cpu_ticks_of,
    machine_busy_ticks,
    postgres_ticks,
    run_fast,
)
from bench.report import RESULTS_DIR, machine_line
from bench.server import (
    NATS_URL,
    POSTGRES_ADMIN_DSN,
    POSTGRES_BENCH_URL,
    RABBITMQ_URL,
    REPO_ROOT,
    Backend,
    ServerError,
    ServerProcess,
    prepare_postgres,
    remove_broker_state,
)

__all__ = ("main",)

BUSES = ("inprocess", "nats", "rabbitmq")
BROKERS = {"nats": ("127.0.0.1", 4222), "rabbitmq": ("127.0.0.1", 5672)}
# The broker's processes, by /proc comm name, whose CPU time the report counts.
BROKER_PROCESSES = {"nats": ("nats-server",), "rabbitmq": ("beam.smp",)}
DATABASES = {"sqlite": Backend("sqlite"), "postgres": Backend("postgres", POSTGRES_BENCH_URL)}
RESULTS_FILE = RESULTS_DIR / "events.md"

WARMUP_TASKS = 20
UNLOADED_GAP_SECONDS = 0.02  # between the unloaded pass's creates: the pipeline drains meanwhile
POLL_SECONDS = 0.05  # Bob's unread count, while waiting for notifications
BROKER_PROBE_SECONDS = 2.0
EVENTS_READY_DEADLINE = 20.0  # until the server logs that its relays and consumers run
SETUP_DEADLINE = 30.0  # registering the two users
WARMUP_DEADLINE = 30.0
CREATE_DEADLINE = 180.0  # every create of one pass
DRAIN_DEADLINE = 120.0  # after the last create: every notification of the pass
ASSIGNED = "tasks.TaskAssigned.v1"
CREATED = "tasks.TaskCreated.v1"


class Skipped(Exception):
    """A backend cannot be measured here (its broker or database is not reachable); why."""


class Failed(Exception):
    """The run broke (API errors, deadline, the server died); the message says how."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.events",
        description="Events end to end (outbox -> bus -> inbox) against a real server per bus backend.",
    )
    parser.add_argument("--backend", choices=(*BUSES, "all"), default="all", help="the bus (default: all)")
    parser.add_argument(
        "--events", type=int, default=2000, help="tasks of the loaded pass (each: 2 events, 1 notification)"
    )
    parser.add_argument(
        "--database",
        choices=(*DATABASES, "all"),
        default="sqlite",
        help="the server's database (default: sqlite)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients of the loaded pass")
    parser.add_argument(
        "--unloaded", type=int, default=200, help="tasks of the unloaded pass, created one at a time"
    )
    parser.add_argument(
        "--burst", type=int, default=5000, help="TaskAssigned events of the burst pass, in one transaction"
    )
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        help="copy each server's log into DIR before its temporary data dir is removed",
    )
    args = parser.parse_args(argv)
    if min(args.events, args.concurrency, args.unloaded, args.burst) <= 0:
        parser.error("--events, --concurrency, --unloaded and --burst must be positive")
    args.buses = list(BUSES) if args.backend == "all" else [args.backend]
    args.databases = list(DATABASES) if args.database == "all" else [args.database]
    return args


# -- measurements -----------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest rank on sorted values (as bench.loadgen does); 0 when empty."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Iterable[float]) -> Latency:
        ordered = sorted(seconds)
        return cls(
            len(ordered),
            percentile(ordered, 50) * 1000,
            percentile(ordered, 99) * 1000,
            (ordered[-1] if ordered else 0.0) * 1000,
        )


@dataclass
class Pass:
    """One pass of creates, as the client saw it (wall-clock times: the server's clock too)."""

    name: str
    started: float = 0.0  # before the first create was sent
    last_created: float = 0.0  # the last 201 arrived
    seen_all: float = 0.0  # Bob's unread count first showed every notification of the pass
    responded: dict[str, float] = field(default_factory=dict)  # task id (hex) -> when its 201 arrived
    errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    cpu: Cpu = field(default_factory=lambda: Cpu())


@dataclass(frozen=True)
class OutboxRow:
    event_id: str
    event_type: str
    key: str  # the task id (hex)
    occurred_at: float
    published_at: float | None
    status: str


@dataclass(frozen=True)
class Tables:
    """What the run left in the server's databases."""

    outbox: list[OutboxRow]
    handled_at: dict[str, float]  # inbox: event id -> when handled
    notifications: dict[str, int]  # event id -> notification rows


@dataclass
class PassFigures:
    events: int  # outbox rows of the pass (2 per task)
    handled: int  # TaskAssigned events that were handled
    committed_per_s: float  # outbox rows / (first create sent .. last 201)
    handled_per_s: float  # end to end: notifications / (first create sent .. last one handled)
    relay_per_s: float  # events published / (first create sent .. the last round's end)
    rounds: Rounds
    published_tail_ms: float  # the last 201 -> the relay's last round ended
    handled_tail_ms: float  # the last 201 -> the last notification was handled
    backlog_at_last_201: int  # events committed but not yet published when the last create answered
    relay_drain_per_s: float | None  # events/s the relay published after the last 201 (no HTTP load)
    consumer_drain_per_s: float | None  # TaskAssigned/s handled after the relay's last round
    latency: Latency  # commit (occurred_at) -> handled (inbox.handled_at), TaskAssigned events
    to_published: Latency  # commit -> the end of the relay round that published it
    after_response: Latency  # the client's 201 arrived -> handled (negative: handled first)
    created_round: Latency  # commit -> the end of the round that published the task's TaskCreated
    assigned_round: Latency  # that round's end -> the end of the next, which published the TaskAssigned


@dataclass
class Result:
    bus: str
    database: str
    tasks: int = 0
    loaded: PassFigures | None = None
    unloaded: PassFigures | None = None
    burst: BurstFigures | None = None
    passes: dict[str, Pass] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    strays: int = 0  # notifications of no TaskAssigned event in the outbox
    unpublished: dict[str, int] = field(default_factory=dict)  # outbox status -> rows not published
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None
    failed: str | None = None

    @property
    def correct(self) -> bool:
        return not (self.lost or self.duplicates or self.strays)


def _epoch(value: Any) -> float:
    """A timestamp as SQLAlchemy left it: text on SQLite (UTC, no offset), a datetime on PostgreSQL."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _hex(value: Any) -> str:
    return uuid.UUID(str(value)).hex


def _outbox_row(row: Sequence[Any]) -> OutboxRow:
    event_id, event_type, key, occurred_at, published_at, status = row
    return OutboxRow(
        event_id=_hex(event_id),
        event_type=event_type,
        key=_hex(key),
        occurred_at=_epoch(occurred_at),
        published_at=_epoch(published_at) if published_at is not None else None,
        status=status,
    )


OUTBOX_QUERY = "SELECT event_id, event_type, key, occurred_at, published_at, status FROM {schema}outbox"
INBOX_QUERY = "SELECT event_id, handled_at FROM {schema}inbox"
NOTIFICATIONS_QUERY = "SELECT event_id, COUNT(*) FROM {schema}notifications GROUP BY event_id"


def read_sqlite(data_dir: Path) -> Tables:
    """The tasks outbox and the notifications inbox from the SQLite files, read-only."""

    def connect(module: str) -> sqlite3.Connection:
        path = data_dir / f"{module}.db"
        if not path.exists():
            raise Failed(f"no {path.name} in the server's data dir")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)

    with contextlib.closing(connect("tasks")) as tasks:
        outbox = [_outbox_row(row) for row in tasks.execute(OUTBOX_QUERY.format(schema=""))]
    with contextlib.closing(connect("notifications")) as notifications:
        handled = {_hex(e): _epoch(at) for e, at in notifications.execute(INBOX_QUERY.format(schema=""))}
        counts = {_hex(e): n for e, n in notifications.execute(NOTIFICATIONS_QUERY.format(schema=""))}
    return Tables(outbox, handled, counts)


async def read_postgres() -> Tables:
    """The same from the ``tasks`` and ``notifications`` schemas of the bench database."""
    import asyncpg

    connection = await asyncpg.connect(
        POSTGRES_ADMIN_DSN.rsplit("/", 1)[0] + "/" + POSTGRES_BENCH_URL.rsplit("/", 1)[1], timeout=5
    )
    try:
        outbox = [_outbox_row(r) for r in await connection.fetch(OUTBOX_QUERY.format(schema="tasks."))]
        inbox = await connection.fetch(INBOX_QUERY.format(schema="notifications."))
        counts = await connection.fetch(NOTIFICATIONS_QUERY.format(schema="notifications."))
    finally:
        await connection.close()
    return Tables(outbox, {_hex(e): _epoch(at) for e, at in inbox}, {_hex(e): n for e, n in counts})


BACKLOGGED_ROUND = 20  # a relay round that publishes this many events found the relay behind


@dataclass(frozen=True)
class Rounds:
    """The relay's rounds over a pass: each stamps one ``published_at`` on the batch it published."""

    count: int
    mean: float  # events per round
    largest: int
    backlogged_per_s: float | None  # events/s over the rounds that found a backlog (None: none did)

    @classmethod
    def of(cls, published: Sequence[float]) -> Rounds:
        sizes = sorted(Counter(published).items())
        if not sizes:
            return cls(0, 0.0, 0, None)
        # A round that published events is followed at once by the next one, so the time between
        # the ends of two rounds is the second one's duration (plus a wait, if one in between
        # found nothing): for the large rounds, how long the relay took for their events.
        events = seconds = 0.0
        for (before, _), (end, size) in itertools.pairwise(sizes):
            if size >= BACKLOGGED_ROUND:
                events += size
                seconds += end - before
        return cls(
            count=len(sizes),
            mean=sum(n for _, n in sizes) / len(sizes),
            largest=max(n for _, n in sizes),
            backlogged_per_s=events / seconds if seconds > 0 else None,
        )


def figures(run: Pass, tables: Tables) -> PassFigures:
    """One pass's numbers: its events are those of the tasks it created."""
    rows = [row for row in tables.outbox if row.key in run.responded]
    assigned = [row for row in rows if row.event_type == ASSIGNED]
    handled = [
        (row, tables.handled_at[row.event_id]) for row in assigned if row.event_id in tables.handled_at
    ]
    published = [row.published_at for row in rows if row.published_at is not None]
    handled_at = sorted(at for _, at in handled)
    last_handled = max(handled_at, default=run.started)
    last_published = max(published, default=run.started)
    created = {row.key: row for row in rows if row.event_type == CREATED}
    pairs = [
        (created[row.key], row)
        for row in assigned
        if row.key in created and row.published_at is not None and created[row.key].published_at is not None
    ]
    return PassFigures(
        events=len(rows),
        handled=len(handled),
        committed_per_s=_rate(len(rows), run.last_created - run.started),
        handled_per_s=_rate(len(handled), last_handled - run.started),
        relay_per_s=_rate(len(published), last_published - run.started),
        rounds=Rounds.of(published),
        published_tail_ms=(last_published - run.last_created) * 1000,
        handled_tail_ms=(last_handled - run.last_created) * 1000,
        backlog_at_last_201=sum(1 for row in rows if (row.published_at or math.inf) > run.last_created),
        relay_drain_per_s=_drain(published, run.last_created),
        consumer_drain_per_s=_drain(handled_at, last_published),
        latency=Latency.of(at - row.occurred_at for row, at in handled),
        to_published=Latency.of(
            row.published_at - row.occurred_at for row in assigned if row.published_at is not None
        ),
        after_response=Latency.of(at - run.responded[row.key] for row, at in handled),
        created_round=Latency.of((c.published_at or 0.0) - c.occurred_at for c, _ in pairs),
        assigned_round=Latency.of((a.published_at or 0.0) - (c.published_at or 0.0) for c, a in pairs),
    )


@dataclass(frozen=True)
class Burst:
    """The burst pass as the client did it."""

    event_ids: frozenset[str]  # hex
    committed: float  # the transaction committed (wall clock)
    cpu: Cpu


@dataclass(frozen=True)
class BurstFigures:
    events: int
    handled: int
    handled_per_s: float  # events / (commit .. the last one handled): end to end
    relay_per_s: float  # events / (commit .. the relay's last round of them ended)
    first_published_ms: float  # commit .. the relay's first round of them ended (its poll, then a round)
    consumer_per_s: float  # events / (the first round ended .. the last one handled)
    rounds: Rounds
    latency: Latency  # commit -> handled, each event (queueing included: they all wait in line)
    server_ms_per_event: float


def burst_figures(burst: Burst, tables: Tables) -> BurstFigures:
    rows = [row for row in tables.outbox if row.event_id in burst.event_ids]
    published = sorted(row.published_at for row in rows if row.published_at is not None)
    handled = sorted(tables.handled_at[row.event_id] for row in rows if row.event_id in tables.handled_at)
    first = published[0] if published else burst.committed
    return BurstFigures(
        events=len(rows),
        handled=len(handled),
        handled_per_s=_rate(len(handled), max(handled, default=burst.committed) - burst.committed),
        relay_per_s=_rate(len(published), max(published, default=burst.committed) - burst.committed),
        first_published_ms=(first - burst.committed) * 1000,
        consumer_per_s=_rate(len(handled), max(handled, default=first) - first),
        rounds=Rounds.of(published),
        latency=Latency.of(at - burst.committed for at in handled),
        server_ms_per_event=burst.cpu.server * 1000 / len(rows) if rows else 0.0,
    )


def _drain(moments: Sequence[float], since: float) -> float | None:
    """How fast the events after ``since`` went (None: too few of them to say)."""
    after = [t for t in moments if t > since]
    if len(after) < BACKLOGGED_ROUND:
        return None
    return _rate(len(after), max(after) - since)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def check(result: Result, tables: Tables) -> None:
    """Exactly one notification per TaskAssigned event; every event published."""
    assigned = {row.event_id for row in tables.outbox if row.event_type == ASSIGNED}
    result.lost = sum(1 for event_id in assigned if tables.notifications.get(event_id, 0) == 0)
    result.duplicates = sum(n - 1 for event_id, n in tables.notifications.items() if n > 1)
    result.strays = sum(n for event_id, n in tables.notifications.items() if event_id not in assigned)
    result.unpublished = dict(Counter(row.status for row in tables.outbox if row.status != "published"))
    inbox_without = sum(1 for event_id in assigned if event_id not in tables.handled_at)
    if inbox_without != result.lost:
        result.notes.append(f"{inbox_without} TaskAssigned events have no inbox row")


# -- CPU time -----------------------------------------------------------------------------


def ticks_of_named(names: Sequence[str]) -> int:
    """CPU ticks of every process whose command name is one of ``names`` (a broker)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as handle:
                head, _, rest = handle.read().rpartition(")")
        except OSError:
            continue
        if head.partition("(")[2] in names:
            total += sum(int(v) for v in rest.split()[11:13])
    return total


class CpuMeter:
    """CPU seconds over a pass: the server, the broker, PostgreSQL, this client, the whole machine."""

    def __init__(self, server_pid: int, bus: str) -> None:
        self._pid = server_pid
        self._broker = BROKER_PROCESSES.get(bus, ())
        self._start = self._read()

    def _read(self) -> tuple[float, ...]:
        broker = ticks_of_named(self._broker) if self._broker else 0
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return (
            cpu_ticks_of(self._pid) / CLK_TCK,
            broker / CLK_TCK,
            postgres_ticks() / CLK_TCK,
            usage.ru_utime + usage.ru_stime,
            machine_busy_ticks() / CLK_TCK,
        )

    def stop(self) -> Cpu:
        return Cpu(*(b - a for a, b in zip(self._start, self._read(), strict=True)))


@dataclass(frozen=True)
class Cpu:
    server: float = 0.0
    broker: float = 0.0
    postgres: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    @property
    def other(self) -> float:
        """Everything else that ran meanwhile (other people's tests, say): should be near 0."""
        return max(0.0, self.machine - self.server - self.broker - self.postgres - self.client)


# -- the API ------------------------------------------------------------------------------


@dataclass(frozen=True)
class People:
    ada_token: str
    bob_token: str
    bob_id: str
    ada_id: str


async def register_people(base_url: str) -> People:
    """Ada and Bob, each with an access token."""

    async def expect(response: httpx.Response, status: int) -> Any:
        if response.status_code != status:
            raise Failed(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}, not {status}: {response.text[:300]}"
            )
        return response.json()

    async with httpx.AsyncClient(base_url=base_url, timeout=15.0) as client:

        async def person(name: str) -> tuple[str, str]:
            email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@bench.example.com"
            password = uuid.uuid4().hex
            body = {"email": email, "password": password, "display_name": name}
            account = await expect(await client.post("/api/v1/users", json=body), 201)
            tokens = await expect(
                await client.post("/api/v1/auth/token", json={"email": email, "password": password}), 200
            )
            return account["id"], tokens["access_token"]

        (ada_id, ada_token), (bob_id, bob_token) = await asyncio.gather(person("Ada"), person("Bob"))
    return People(ada_token=ada_token, bob_token=bob_token, bob_id=bob_id, ada_id=ada_id)


async def create_tasks(
    port: int, people: People, run: Pass, count: int, *, concurrency: int, gap: float = 0.0
) -> None:
    """``count`` tasks from Ada assigned to Bob, by ``concurrency`` closed-loop clients."""
    numbers = itertools.count()

    async def client_loop() -> None:
        client = RawClient(port, people.ada_token)
        try:
            while (n := next(numbers)) < count:
                body = msgspec.json.encode({"title": f"{run.name} task {n}", "assignee_id": people.bob_id})
                try:
                    status, answer = await client.request(Request("POST", "/api/v1/tasks", body))
                except Exception as exc:  # counted, not fatal: the run's checks see the shortfall
                    run.errors[type(exc).__name__] += 1
                    run.samples.setdefault(type(exc).__name__, str(exc)[:200])
                    await asyncio.sleep(0.05)
                    continue
                if status == 201:
                    run.responded[_hex(msgspec.json.decode(answer)["id"])] = time.time()
                else:
                    run.errors[str(status)] += 1
                    run.samples.setdefault(str(status), answer[:200].decode("utf-8", "replace"))
                if gap:
                    await asyncio.sleep(gap)
        finally:
            client.close()

    run.started = time.time()
    try:
        await asyncio.wait_for(asyncio.gather(*(client_loop() for _ in range(concurrency))), CREATE_DEADLINE)
    except TimeoutError:
        raise Failed(
            f"{run.name}: {len(run.responded)} of {count} creates in {CREATE_DEADLINE:.0f} s"
        ) from None
    run.last_created = max(run.responded.values(), default=time.time())
    if run.errors:
        errors = ", ".join(f"{k}x{n}" for k, n in run.errors.items())
        raise Failed(f"{run.name}: create errors {errors}; e.g. {next(iter(run.samples.values()))}")


async def wait_for_notifications(port: int, people: People, expected: int, deadline: float) -> int:
    """Poll Bob's unread count until it reaches ``expected`` or ``deadline`` passes; the last count."""
    client = RawClient(port, people.bob_token)
    unread = -1
    try:
        while True:
            with contextlib.suppress(Exception):
                status, answer = await client.request(Request("GET", "/api/v1/notifications/unread-count"))
                if status == 200:
                    unread = int(msgspec.json.decode(answer)["unread"])
            if unread >= expected or time.monotonic() >= deadline:
                return unread
            await asyncio.sleep(POLL_SECONDS)
    finally:
        client.close()


async def run_pass(
    server: ServerProcess,
    people: People,
    result: Result,
    name: str,
    count: int,
    *,
    concurrency: int,
    gap: float = 0.0,
    drain: float = DRAIN_DEADLINE,
) -> Pass:
    run = result.passes[name] = Pass(name)
    expected = sum(len(p.responded) for p in result.passes.values() if p is not run) + count
    meter = CpuMeter(server.pid, result.bus)
    await create_tasks(server.port, people, run, count, concurrency=concurrency, gap=gap)
    unread = await wait_for_notifications(server.port, people, expected, time.monotonic() + drain)
    run.seen_all = time.time()
    run.cpu = meter.stop()
    if unread < expected:
        problems = "; ".join(server.log_problems(3)) or "no warnings logged"
        raise Failed(
            f"{name}: Bob has {unread} of {expected} notifications {drain:.0f} s after the last create "
            f"(server log: {problems})"
        )
    return run


EVENTS_PER_BURST_TASK = 5  # consecutive events of one entity: a relay round takes them together


def burst_rows(people: People, count: int) -> list[dict[str, Any]]:
    """``count`` TaskAssigned events (Ada assigns to Bob) as outbox rows, five per task."""
    from contracts.tasks import TaskAssigned

    now = datetime.now(UTC)
    owner, assignee = uuid.UUID(people.ada_id), uuid.UUID(people.bob_id)
    rows = []
    task_id = uuid.uuid4()
    for n in range(count):
        if n % EVENTS_PER_BURST_TASK == 0:
            task_id = uuid.uuid4()
        event = TaskAssigned(
            event_id=uuid.uuid4(),
            occurred_at=now,
            task_id=task_id,
            owner_id=owner,
            assignee_id=assignee,
            previous_assignee_id=None,
            assigned_by=owner,
            title=f"burst task {n // EVENTS_PER_BURST_TASK}",
        )
        rows.append(
            {
                "event_id": event.event_id,
                "event_type": event.type_name(),
                "key": event.key,
                "payload": msgspec.json.encode(event).decode(),
                "occurred_at": now,
                "status": "pending",
                "attempts": 0,
                "available_at": now,
            }
        )
    return rows


async def commit_burst(backend: Backend, data_dir: Path, rows: list[dict[str, Any]]) -> float:
    """Insert ``rows`` into the tasks outbox in one transaction; when it committed (wall clock)."""
    from sqlalchemy import insert
    from sqlalchemy.ext.asyncio import create_async_engine

    from app.kernel.events.tables import outbox

    if backend.name == "sqlite":
        url = f"sqlite+aiosqlite:///{data_dir / 'tasks.db'}"
        engine = create_async_engine(url, connect_args={"timeout": 30})
    else:
        engine = create_async_engine(
            POSTGRES_BENCH_URL, execution_options={"schema_translate_map": {None: "tasks"}}
        )
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(outbox), rows)
        return time.time()
    finally:
        await engine.dispose()


async def run_burst(
    server: ServerProcess, backend: Backend, data_dir: Path, people: People, result: Result, count: int
) -> Burst:
    expected = sum(len(p.responded) for p in result.passes.values()) + count
    rows = burst_rows(people, count)
    meter = CpuMeter(server.pid, result.bus)
    committed = await commit_burst(backend, data_dir, rows)
    unread = await wait_for_notifications(server.port, people, expected, time.monotonic() + DRAIN_DEADLINE)
    cpu = meter.stop()
    if unread < expected:
        problems = "; ".join(server.log_problems(3)) or "no warnings logged"
        raise Failed(f"burst: Bob has {unread} of {expected} notifications (server log: {problems})")
    return Burst(frozenset(row["event_id"].hex for row in rows), committed, cpu)


# -- one backend --------------------------------------------------------------------------


def broker_problem(bus: str) -> str | None:
    """Why the bus's broker cannot be used, or None (in-process needs none)."""
    if bus not in BROKERS:
        return None
    host, port = BROKERS[bus]
    try:
        with socket.create_connection((host, port), timeout=BROKER_PROBE_SECONDS):
            return None
    except OSError as exc:
        return f"{bus} broker not reachable at {host}:{port} ({type(exc).__name__}: {exc})"


def write_config(data_dir: Path, bus: str) -> tuple[Path, str]:
    """Cheap password hashing (two users only), a generated signing key, the bus, a fresh namespace.

    Returns the file and the namespace.
    """
    namespace = f"bench_{bus}_{uuid.uuid4().hex[:10]}"
    config = data_dir / "events-bench.toml"
    config.write_text(
        "[security]\ngenerate_signing_key = true\n\n"
        "[security.password_hash]\ntime_cost = 1\nmemory_kib = 8192\nparallelism = 1\n\n"
        f'[events]\nbus = "{bus}"\nnamespace = "{namespace}"\n'
        f'nats_url = "{NATS_URL}"\nrabbitmq_url = "{RABBITMQ_URL}"\n',
        encoding="utf-8",
    )
    return config, namespace


async def wait_events_ready(server: ServerProcess, bus: str) -> None:
    """Until the server logs that its relays and consumers run; skip when its broker fails it."""
    deadline = time.monotonic() + EVENTS_READY_DEADLINE
    ready = f"events: {bus} bus; relaying"
    while time.monotonic() < deadline:
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
        if ready in log:
            return
        await asyncio.sleep(0.1)
    unavailable = [line for line in log.splitlines() if "bus unavailable" in line]
    if unavailable:
        raise Skipped(f"the server could not use the {bus} bus: {unavailable[-1][:300]}")
    raise Failed(f"the server did not log {ready!r} within {EVENTS_READY_DEADLINE:.0f} s")


async def run_backend(bus: str, database: str, args: argparse.Namespace) -> Result:
    result = Result(bus, database)
    if reason := broker_problem(bus):
        raise Skipped(reason)
    backend = DATABASES[database]
    if backend.name == "postgres" and (reason := await prepare_postgres()):
        raise Skipped(reason)
    data_dir = Path(tempfile.mkdtemp(prefix=f"tessera-events-{bus}-"))
    config, namespace = write_config(data_dir, bus)
    server = ServerProcess(backend, data_dir, config=config)
    label = f"{bus} ({backend.name})"
    try:
        say(f"{label}: migrating, starting the server on 127.0.0.1:{server.port} ...")
        await server.upgrade()
        failure: Failed | None = None
        burst: Burst | None = None
        try:
            await server.start()
            say(f"{label}: server pid {server.pid}, waiting for its events runtime ...")
            await wait_events_ready(server, bus)
            people = await asyncio.wait_for(register_people(server.base_url), SETUP_DEADLINE)
            await run_pass(
                server, people, result, "warm-up", WARMUP_TASKS, concurrency=1, drain=WARMUP_DEADLINE
            )
            say(f"{label}: unloaded pass, {args.unloaded} tasks one at a time ...")
            await run_pass(
                server, people, result, "unloaded", args.unloaded, concurrency=1, gap=UNLOADED_GAP_SECONDS
            )
            say(f"{label}: loaded pass, {args.events} tasks by {args.concurrency} clients ...")
            await run_pass(server, people, result, "loaded", args.events, concurrency=args.concurrency)
            say(f"{label}: burst pass, {args.burst} events in one transaction ...")
            burst = await run_burst(server, backend, data_dir, people, result, args.burst)
        except Failed as exc:
            failure = exc  # still count what was lost or duplicated so far
        finally:
            await server.stop()
        tables = read_sqlite(data_dir) if backend.name == "sqlite" else await read_postgres()
        check(result, tables)
        if failure is not None or burst is None:
            raise Failed(f"{failure} (so far: {result.lost} lost, {result.duplicates} duplicates)")
        result.tasks = sum(len(p.responded) for p in result.passes.values())
        result.unloaded = figures(result.passes["unloaded"], tables)
        result.loaded = figures(result.passes["loaded"], tables)
        result.burst = burst_figures(burst, tables)
        if problems := server.log_problems():
            result.notes.append("server log warnings/errors: " + "; ".join(problems))
        progress(result)
        return result
    finally:
        if bus in BROKERS and (problem := await remove_broker_state(bus, namespace)):
            say(f"{label}: {problem}")
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(server.log_path, args.keep_logs / f"events-{bus}-{backend.name}.log")
        shutil.rmtree(data_dir, ignore_errors=True)


def progress(result: Result) -> None:
    loaded, unloaded = result.loaded, result.unloaded
    assert loaded is not None
    assert unloaded is not None
    say(
        f"  {result.bus:9} committed {loaded.committed_per_s:6,.0f} ev/s"
        f"  handled {loaded.handled_per_s:6,.0f} ev/s  relay {loaded.relay_per_s:6,.0f} ev/s"
        f"  unloaded p50 {unloaded.latency.p50_ms:6.1f}"
        f" p99 {unloaded.latency.p99_ms:6.1f} ms  loaded p50 {loaded.latency.p50_ms:7.1f}"
        f" p99 {loaded.latency.p99_ms:7.1f} ms  lost {result.lost}  duplicates {result.duplicates}"
    )
    if result.burst is not None:
        say(
            f"  {result.bus:9} burst: handled {result.burst.handled_per_s:6,.0f} ev/s end to end,"
            f" relay {result.burst.relay_per_s:6,.0f} ev/s"
        )


# -- the report ---------------------------------------------------------------------------


def _per_event(seconds: float, figures: PassFigures) -> str:
    return f"{seconds * 1000 / figures.events:.2f}" if figures.events else "-"


def _cores(seconds: float, run: Pass) -> str:
    window = run.seen_all - run.started
    return f"{seconds / window:.2f}" if window > 0 else "-"


def _against(value: float, target: float, *, at_least: bool, unit: str, shown: str | None = None) -> str:
    """A figure and whether it meets its target (bold when it does not)."""
    met = value >= target if at_least else value <= target
    text = shown if shown is not None else format(value, unit)
    sign = "≥" if at_least else "≤"
    return f"{text} (met)" if met else f"**{text}** (target {sign} {format(target, unit)})"


def _maybe(rate: float | None) -> str:
    return f"{rate:,.0f}" if rate else "-"


def _cpu_cells(bus: str, run: Pass, f: PassFigures) -> str:
    broker = _per_event(run.cpu.broker, f) if bus in BROKERS else "-"
    cores = " / ".join(_cores(seconds, run) for seconds in (run.cpu.server, run.cpu.machine, run.cpu.other))
    return f"{_per_event(run.cpu.server, f)} | {broker} | {cores}"


def render(results: list[Result], args: argparse.Namespace, started: datetime) -> str:
    header = (
        f"**Tessera events benchmark** — {started.astimezone(UTC):%Y-%m-%d %H:%M UTC} — machine: "
        f"{machine_line()} — loaded pass: {args.events} tasks "
        f"({2 * args.events} events) by {args.concurrency} clients; unloaded pass: {args.unloaded} "
        f"tasks one at a time, {UNLOADED_GAP_SECONDS * 1000:.0f} ms apart"
    )
    table = [
        "| bus | database | events/s committed | events/s handled end to end (notifications) "
        "| relay events/s | unloaded p50 ms | unloaded p99 ms | loaded p50 ms | loaded p99 ms "
        "| loaded max ms | lost | duplicates |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    unloaded = [
        "| bus | database | commit → handled p50 / p99 / max | 201 → handled p50 / p99 "
        "| commit → TaskCreated's round ended p50 | TaskAssigned's round p50 / p99 "
        "| server CPU ms/event | broker CPU ms/event | cores: server / machine / other load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    loaded = [
        "| bus | database | relay rounds: count / mean / largest | relay events/s: sustained / in rounds of "
        f"{BACKLOGGED_ROUND}+ / after the last 201 | consumer events/s after the relay's last round "
        "| events unpublished at the last 201 | last 201 → last published / last handled "
        "| 201 → handled p50 / p99 | server CPU ms/event "
        "| broker CPU ms/event | cores: server / machine / other load |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    burst = [
        "| bus | database | events | handled end to end, events/s | relay events/s "
        "| commit → first round ended ms | consumer events/s after it "
        "| relay rounds: count / mean / largest | commit → handled p50 / p99 ms "
        "| server CPU ms/event |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    targets = [
        "| bus | database | events/s handled (burst) | unloaded p99 ms | backlog gone after the load (ms) "
        "| lost / duplicated |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    notes: list[str] = []
    for r in results:
        name = f"{r.bus} ({r.database})"
        if r.burst is not None and r.loaded is not None and r.unloaded is not None:
            b = r.burst
            burst.append(
                f"| {r.bus} | {r.database} | {b.events:,} | {b.handled_per_s:,.0f} | {b.relay_per_s:,.0f} | "
                f"{b.first_published_ms:,.0f} | {b.consumer_per_s:,.0f} | "
                f"{b.rounds.count} / {b.rounds.mean:.1f} / {b.rounds.largest} | "
                f"{b.latency.p50_ms:,.0f} / {b.latency.p99_ms:,.0f} | {b.server_ms_per_event:.2f} |"
            )
            rate_target, p99_target = (5000, 20.0) if r.bus == "inprocess" else (2000, 50.0)
            tail = max(r.loaded.handled_tail_ms, r.loaded.published_tail_ms)
            faults = f"{r.lost} / {r.duplicates}"
            cells = (
                _against(b.handled_per_s, rate_target, at_least=True, unit=",.0f"),
                _against(r.unloaded.latency.p99_ms, p99_target, at_least=False, unit=".1f"),
                _against(tail, 5000.0, at_least=False, unit=",.0f"),
                _against(r.lost + r.duplicates, 0, at_least=False, unit="d", shown=faults),
            )
            targets.append(f"| {r.bus} | {r.database} | {' | '.join(cells)} |")
        if r.skipped or r.failed or r.loaded is None or r.unloaded is None:
            why = f"skipped: {r.skipped}" if r.skipped else f"FAILED: {r.failed}"
            table.append(f"| {r.bus} | {r.database} | {why} | | | | | | | | | |")
            continue
        lo, un = r.loaded, r.unloaded
        lost = f"**{r.lost}**" if r.lost else "0"
        duplicates = f"**{r.duplicates}**" if r.duplicates else "0"
        table.append(
            f"| {r.bus} | {r.database} | {lo.committed_per_s:,.0f} | {lo.handled_per_s:,.0f} | "
            f"{lo.relay_per_s:,.0f} | "
            f"{un.latency.p50_ms:.1f} | {un.latency.p99_ms:.1f} | {lo.latency.p50_ms:.1f} | "
            f"{lo.latency.p99_ms:.1f} | {lo.latency.max_ms:.1f} | {lost} | {duplicates} |"
        )
        unloaded.append(
            f"| {r.bus} | {r.database} | {un.latency.p50_ms:.1f} / {un.latency.p99_ms:.1f} / "
            f"{un.latency.max_ms:.1f} | "
            f"{un.after_response.p50_ms:.1f} / {un.after_response.p99_ms:.1f} | "
            f"{un.created_round.p50_ms:.1f} | {un.assigned_round.p50_ms:.1f} / "
            f"{un.assigned_round.p99_ms:.1f} | "
            f"{_cpu_cells(r.bus, r.passes['unloaded'], un)} |"
        )
        loaded.append(
            f"| {r.bus} | {r.database} | {lo.rounds.count} / {lo.rounds.mean:.1f} / {lo.rounds.largest} | "
            f"{lo.relay_per_s:,.0f} / {_maybe(lo.rounds.backlogged_per_s)} / "
            f"{_maybe(lo.relay_drain_per_s)} | "
            f"{_maybe(lo.consumer_drain_per_s)} | {lo.backlog_at_last_201:,} | "
            f"{lo.published_tail_ms:,.0f} / {lo.handled_tail_ms:,.0f} | "
            f"{lo.after_response.p50_ms:.1f} / {lo.after_response.p99_ms:.1f} | "
            f"{_cpu_cells(r.bus, r.passes['loaded'], lo)} |"
        )
        if r.unpublished:
            states = ", ".join(f"{n} {status}" for status, n in sorted(r.unpublished.items()))
            notes.append(f"{name}: outbox rows not published at the end: {states}")
        if r.strays:
            notes.append(f"{name}: **{r.strays} notifications of no TaskAssigned event**")
        notes += [f"{name}: {' '.join(note.split())}" for note in r.notes]
    parts = [
        header,
        "",
        "Against the targets (issue 13: in-process ≥ 5,000 events/s, a broker ≥ 2,000/s; unloaded "
        "commit → handled p99 ≤ 20 ms in-process, ≤ 50 ms over a broker; the backlog gone within "
        "5 s of the load ending; none lost or duplicated):",
        "",
        *targets,
        "",
        *table,
        "",
        "Unloaded pass, where the time goes (ms; commit = the outbox row's `occurred_at`, a round = "
        "one relay round, its end = the `published_at` it stamps on its batch, handled = the "
        "notifications inbox's `handled_at`, 201 = the client got the create's answer):",
        "",
        *unloaded,
        "",
        "Loaded pass, throughput by stage (ms; events/s):",
        "",
        *loaded,
        "",
        "Burst pass: TaskAssigned events committed into the tasks outbox in one transaction (five "
        "per task), then relayed and handled; from the commit (the relay finds them on its next "
        "poll, ≤ `relay_poll_seconds`):",
        "",
        *burst,
        "",
        "How it was measured: one `tessera serve` (monolith, one worker, fresh data dir, its own "
        "events namespace) per bus; every task is created by Ada and assigned to Bob, so it commits "
        "TaskCreated + TaskAssigned to the tasks outbox and the TaskAssigned becomes one notification "
        "for Bob. Loaded: the clients create as fast as the API answers; *events/s committed* = outbox "
        "rows / (first create sent .. last 201); *handled end to end* = notifications / (first create "
        "sent .. last notification handled); *relay events/s* = events published / (first create "
        "sent .. the relay's last round ended): the relay's sustained rate, which the commit rate "
        f"bounds while it keeps up (in rounds of {BACKLOGGED_ROUND}+ events it was behind). Unloaded: "
        "one create at a time. Latency = inbox `handled_at` - outbox `occurred_at` of each TaskAssigned "
        "event (`occurred_at` is taken just before the create's transaction, so it includes the rest "
        "of that request). Lost / duplicates: TaskAssigned events of the whole run with no / more "
        "than one notification. CPU per event committed (server: the `tessera serve` process); "
        "other load: the machine's busy cores less server, broker, PostgreSQL and this client. "
        "Load client, server and brokers share the machine's cores.",
    ]
    if notes:
        parts += ["", "Notes:", "", *(f"- {note}" for note in notes)]
    return "\n".join(parts) + "\n"


# -- the run ------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    if (main_task := asyncio.current_task()) is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    results: list[Result] = []
    failed = False
    for database in args.databases:
        for bus in args.buses:
            try:
                results.append(await run_backend(bus, database, args))
            except Skipped as skipped:
                say(f"{bus} ({database}): skipped: {skipped}")
                results.append(Result(bus, database, skipped=str(skipped)))
            except (Failed, ServerError, TimeoutError) as exc:
                message = str(exc) or type(exc).__name__
                say(f"{bus} ({database}): FAILED: {message}")
                results.append(Result(bus, database, failed=message.splitlines()[0][:300]))
                failed = True
    for result in results:
        if result.loaded is not None and not result.correct:
            failed = True
            say(
                f"{result.bus} ({result.database}): CORRECTNESS FAILED: {result.lost} lost, "
                f"{result.duplicates} duplicated, {result.strays} stray notifications"
            )
    report = render(results, args, started)
    print("\n" + report, end="", flush=True)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(report, encoding="utf-8")
    say(f"written: {RESULTS_FILE.relative_to(REPO_ROOT)}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run_fast(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: servers stopped, nothing written")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
