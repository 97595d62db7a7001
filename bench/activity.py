"""Activity's event store: how fast it appends, how fast its projections catch up, how long a rebuild takes.

    .venv/bin/python -m bench.activity                 # SQLite and PostgreSQL, 100,000 events each
    .venv/bin/python -m bench.activity --events 20000 --database sqlite

In one process, through the module's real composition (the whole application, migrated
in a fresh data dir, or the ``tessera_bench`` PostgreSQL database), without HTTP:

* **append**: integration events (tasks of five events each: created, assigned, started,
  reassigned, completed; and a registration per user) handed to activity's inbox consumer
  in batches of 100, as a broker's consumer hands them over: the inbox, the sealing of
  personal values, the version check and the append. Events per second.
* **catch-up**: the four projections (timeline, feed, stats, audit) brought from nothing
  to the head of that store. Events per second (each event read once per projection).
* **rebuild**: ``tessera projections rebuild`` of every projection over the full store:
  shadow tables built and swapped in. Seconds.

Results: ``bench/results/activity.md`` (replaced), and the same Markdown on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from app.composition.container import Composition, compose
from app.kernel.config import Secret, Settings
from app.kernel.events import EventMessage
from bench.report import RESULTS_DIR, machine_line
from bench.server import POSTGRES_BENCH_URL, prepare_postgres
from contracts import IntegrationEvent
from contracts.identity import UserRegistered
from contracts.tasks import TaskAssigned, TaskCreated, TaskStatus, TaskStatusChanged

BATCH = 100  # what a broker consumer hands the inbox at once (events.consume_batch)
KEY = "bench-signing-key-of-at-least-thirty-two-characters"


@dataclass
class Figures:
    database: str
    events: int
    append_per_s: float
    catch_up_per_s: float
    rebuild_seconds: float


def say(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def history(tasks: int, users: int) -> list[IntegrationEvent]:
    """Each task's five acts in order, tasks interleaved as a busy system would commit them."""
    people = [uuid.uuid4() for _ in range(users)]
    start = datetime(2026, 1, 5, tzinfo=UTC)
    events: list[IntegrationEvent] = [
        UserRegistered(
            event_id=uuid.uuid4(),
            occurred_at=start,
            user_id=p,
            display_name=f"Person {i}",
            registered_at=start,
        )
        for i, p in enumerate(people)
    ]
    for n in range(tasks):
        owner, first, second = people[n % users], people[(n + 1) % users], people[(n + 2) % users]
        at = start + timedelta(minutes=n)
        task_id = uuid.uuid4()
        base = {"task_id": task_id, "owner_id": owner, "title": f"Task number {n}"}
        events += [
            TaskCreated(event_id=uuid.uuid4(), occurred_at=at, assignee_id=None, labels=["bench"], **base),
            TaskAssigned(
                event_id=uuid.uuid4(),
                occurred_at=at + timedelta(hours=1),
                assignee_id=first,
                previous_assignee_id=None,
                assigned_by=owner,
                **base,
            ),
            TaskStatusChanged(
                event_id=uuid.uuid4(),
                occurred_at=at + timedelta(hours=2),
                assignee_id=first,
                changed_by=first,
                previous_status=TaskStatus.TODO,
                status=TaskStatus.IN_PROGRESS,
                **base,
            ),
            TaskAssigned(
                event_id=uuid.uuid4(),
                occurred_at=at + timedelta(hours=3),
                assignee_id=second,
                previous_assignee_id=first,
                assigned_by=owner,
                **base,
            ),
            TaskStatusChanged(
                event_id=uuid.uuid4(),
                occurred_at=at + timedelta(hours=4),
                assignee_id=second,
                changed_by=second,
                previous_status=TaskStatus.IN_PROGRESS,
                status=TaskStatus.DONE,
                **base,
            ),
        ]
    return events


def message(event: IntegrationEvent) -> EventMessage:
    kind = type(event).type_name()
    return EventMessage(
        event_id=str(event.event_id),
        event_type=kind,
        source=kind.split(".", 1)[0],
        key=event.key,
        payload=msgspec.json.encode(event),
    )


async def measure(settings: Settings, name: str, events: int) -> Figures:
    composition: Composition = compose(settings)
    await composition.upgrade()
    try:
        consumer = next(c for c in composition.events.consumers if c.module == "activity")
        (projector,) = composition.projectors
        tasks = max(1, (events - events // 50) // 5)
        messages = [message(e) for e in history(tasks, users=max(2, events // 50))]
        say(f"{name}: appending {len(messages):,} events in batches of {BATCH}")
        started = time.perf_counter()
        for i in range(0, len(messages), BATCH):
            await consumer.deliver_all(messages[i : i + BATCH])
        appended = time.perf_counter() - started
        say(f"{name}: catching up {len(projector.names)} projections")
        started = time.perf_counter()
        read = await projector.catch_up()
        caught_up = time.perf_counter() - started
        say(f"{name}: rebuilding every projection")
        started = time.perf_counter()
        for projection in projector.names:
            await projector.rebuild(projection)
        rebuilt = time.perf_counter() - started
        assert all(s.lag == 0 for s in await projector.status())
        return Figures(
            database=name,
            events=len(messages),
            append_per_s=len(messages) / appended,
            catch_up_per_s=read / caught_up,
            rebuild_seconds=rebuilt,
        )
    finally:
        await composition.aclose()


def settings_for(database: str, data_dir: Path) -> Settings:
    settings = Settings(data_dir=str(data_dir))
    security = msgspec.structs.replace(settings.security, signing_key=Secret(KEY))
    settings = msgspec.structs.replace(settings, security=security)
    if database == "postgres":
        settings = msgspec.structs.replace(
            settings, database=msgspec.structs.replace(settings.database, url=Secret(POSTGRES_BENCH_URL))
        )
    return settings


def render(rows: list[Figures], started: datetime, notes: list[str]) -> str:
    lines = [
        f"**Activity's event store** — {started:%Y-%m-%d %H:%M} UTC — {machine_line()}",
        "",
        "| database | events | append, events/s | projections catch up, events/s (each applied by all 4) "
        "| rebuild every projection, s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.database} | {r.events:,} | {r.append_per_s:,.0f} | {r.catch_up_per_s:,.0f} "
        f"| {r.rebuild_seconds:.1f} |"
        for r in rows
    ]
    return "\n".join([*lines, "", *notes]) + "\n"


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.activity", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    rows, notes = [], []
    for database in ("sqlite", "postgres") if args.database == "all" else (args.database,):
        if database == "postgres" and (problem := await prepare_postgres()):
            notes.append(f"PostgreSQL skipped: {problem}")
            continue
        with tempfile.TemporaryDirectory(prefix="tessera-bench-activity-") as data_dir:
            label = "SQLite" if database == "sqlite" else "PostgreSQL"
            rows.append(await measure(settings_for(database, Path(data_dir)), label, args.events))
    report = render(rows, started, notes)
    (RESULTS_DIR / "activity.md").write_text(report)
    print(report)


if __name__ == "__main__":
    asyncio.run(main())
