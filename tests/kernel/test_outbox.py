"""The transactional outbox and its relay, on SQLite and PostgreSQL, against a recording bus.

The real buses have their own suite (test_buses.py); here the bus only records what the
relay hands it, or refuses, so that every rule of the relay can be seen on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

from app.kernel.config import EventSettings
from app.kernel.context import CallContext, call_context, current_context
from app.kernel.db import Database
from app.kernel.events import (
    BusUnavailable,
    EventConsumer,
    EventMessage,
    Outbox,
    OutboxRelay,
    Subscription,
    UndeclaredEvent,
)
from app.kernel.events.bus import Outcome, PartlyHandled, publish_in_key_order
from app.kernel.events.tables import FAILED, PUBLISHED, inbox, metadata, outbox
from app.kernel.telemetry.logs import trace_ids
from app.kernel.telemetry.tracing import continue_trace
from app.kernel.unit_of_work import UnitOfWork, UnitsOfWork
from contracts import IntegrationEvent
from tests.conftest import POSTGRES_URL, drop_schemas, run_async

SETTINGS = EventSettings(relay_batch=50, max_attempts=3, backoff_initial_seconds=0.01, lease_seconds=30)


class Pinged(IntegrationEvent, frozen=True, kw_only=True, tag="test.Pinged.v1"):
    key_field = "subject"

    subject: str
    n: int


class Unlisted(IntegrationEvent, frozen=True, kw_only=True, tag="test.Unlisted.v1"):
    pass


def ping(subject: str, n: int) -> Pinged:
    return Pinged(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), subject=subject, n=n)


class RecordingBus:
    """Accepts (and records) what it is given, or refuses as told."""

    name = "recording"

    def __init__(self) -> None:
        self.published: list[EventMessage] = []
        self.rounds: list[int] = []  # messages handed over per relay round
        self.down = False
        self.refuse: set[str] = set()  # event ids refused as bad messages

    async def connect(self) -> None: ...

    async def declare(self, consumers: object) -> None: ...

    async def subscribe(self, *args: object) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, message: EventMessage) -> None:
        await asyncio.sleep(0)  # let concurrent relays interleave
        if self.down:
            raise BusUnavailable("broker down")
        if message.event_id in self.refuse:
            raise ValueError("refused")
        self.published.append(message)

    async def publish_batch(self, messages: Sequence[EventMessage]) -> list[Outcome]:
        self.rounds.append(len(messages))
        return await publish_in_key_order(self.publish, messages)

    def numbers(self, subject: str | None = None) -> list[int]:
        decoded = [msgspec.json.decode(m.payload, type=Pinged) for m in self.published]
        return [e.n for e in decoded if subject is None or e.subject == subject]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        db = Database(module="events_test", url=make_url(f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"))
        async with db.engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        yield db
        await db.dispose()
    else:
        async for db in _postgres(request):
            yield db


@pytest.fixture
async def postgres_database(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """For what only PostgreSQL allows: concurrent writers."""
    async for db in _postgres(request):
        yield db


async def _postgres(request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    request.getfixturevalue("postgres_url")  # skips (fails under CI) without PostgreSQL
    await asyncio.to_thread(run_async, drop_schemas("events_test"))
    db = Database(module="events_test", url=make_url(POSTGRES_URL))
    async with db.engine.begin() as connection:
        await connection.execute(text('CREATE SCHEMA IF NOT EXISTS "events_test"'))
        await connection.run_sync(metadata.create_all)
    yield db
    await db.dispose()
    await asyncio.to_thread(run_async, drop_schemas("events_test"))


def make_outbox(database: Database) -> Outbox:
    return Outbox(module="events_test", database=database, publishes=(Pinged,))


def make_relay(
    database: Database, bus: RecordingBus, clock: Callable[[], datetime] | None = None, **settings: object
) -> OutboxRelay:
    return OutboxRelay(
        outbox=make_outbox(database),
        database=database,
        bus=bus,
        settings=msgspec.structs.replace(SETTINGS, **settings),
        **({"clock": clock} if clock else {}),
    )


async def append(database: Database, *events: IntegrationEvent) -> None:
    async with database.transaction() as connection:
        await make_outbox(database).append(connection, *events)


async def drain(relay: OutboxRelay) -> None:
    while await relay.relay_once():
        pass


async def test_events_of_a_rolled_back_transaction_are_never_published(database: Database) -> None:
    bus = RecordingBus()
    with pytest.raises(RuntimeError):
        async with database.transaction() as connection:
            await make_outbox(database).append(connection, ping("a", 1))
            raise RuntimeError("the change failed")
    await append(database, ping("a", 2))
    await drain(make_relay(database, bus))
    assert bus.numbers() == [2]


async def test_published_events_are_marked_and_not_published_again(database: Database) -> None:
    bus = RecordingBus()
    await append(database, ping("a", 1), ping("b", 2))
    relay = make_relay(database, bus)
    await drain(relay)
    await drain(relay)
    assert sorted(bus.numbers()) == [1, 2]
    async with database.read() as connection:
        statuses = (await connection.execute(select(outbox.c.status))).scalars().all()
    assert statuses == [PUBLISHED, PUBLISHED]


async def test_the_message_carries_the_event_and_its_origin(database: Database) -> None:
    bus = RecordingBus()
    event = ping("subject-1", 7)
    await append(database, event)
    await drain(make_relay(database, bus))
    (message,) = bus.published
    assert message.event_id == str(event.event_id)
    assert message.event_type == "test.Pinged.v1"
    assert message.source == "events_test"
    assert message.key == "subject-1"
    assert msgspec.json.decode(message.payload, type=Pinged) == event


async def test_the_trace_of_the_writing_request_goes_on_in_the_consumer(database: Database) -> None:
    """The outbox keeps the writer's trace context; the consumer's work joins that trace.

    (Here without recording spans: the trace a caller passed in goes on all the same. The
    spans themselves are checked end to end, in tests/e2e/test_tracing.py.)
    """
    bus = RecordingBus()
    writer = {"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01", "tracestate": "vendor=1"}
    with call_context(CallContext(correlation_id="req-1")), continue_trace(writer):
        await append(database, ping("a", 1))
    await drain(make_relay(database, bus))
    (message,) = bus.published
    assert message.trace_headers() == writer
    assert EventMessage.from_headers(message.headers(), message.payload) == message  # as brokers carry it

    seen: list[tuple[CallContext, dict[str, str]]] = []

    async def handle(events: Sequence[Pinged], unit: UnitOfWork) -> None:
        seen.append((current_context(), trace_ids()))

    consumer = EventConsumer(
        module="events_test",
        units=UnitsOfWork(UnitOfWork, database=database),
        subscriptions={"test.Pinged.v1": Subscription(Pinged, handle)},
    )
    await consumer.deliver(message)
    ((handling, ids),) = seen
    assert handling.correlation_id == "req-1"
    assert ids["trace_id"] == "ab" * 16  # the same trace


async def test_a_consumer_applies_a_batch_in_one_go_or_says_how_far_it_got(database: Database) -> None:
    applied: list[int] = []
    runs: list[int] = []

    async def handle(events: Sequence[Pinged], unit: UnitOfWork) -> None:
        runs.append(len(events))
        for event in events:
            if event.n == 3:
                raise ValueError("no threes")
            applied.append(event.n)

    consumer = EventConsumer(
        module="events_test",
        units=UnitsOfWork(UnitOfWork, database=database),
        subscriptions={"test.Pinged.v1": Subscription(Pinged, handle)},
    )
    await append(database, *(ping("k", n) for n in (1, 2, 4, 3, 5)))
    bus = RecordingBus()
    await drain(make_relay(database, bus))
    one, two, four, three, five = bus.published

    await consumer.deliver_all([one, two, four, one])  # one batch; a repeat inside it counts once
    assert applied == [1, 2, 4]
    assert runs == [3]  # one handler call for the run of one type
    with pytest.raises(PartlyHandled) as refused:
        await consumer.deliver_all([two, five, three, five])
    assert refused.value.handled == 2  # two (already handled) and five applied; three was not
    assert isinstance(refused.value.cause, ValueError)
    assert applied == [1, 2, 4, 5, 5]  # five: the failed batch's try, rolled back, then alone
    async with database.read() as connection:
        handled = (await connection.execute(select(func.count()).select_from(inbox))).scalar_one()
    assert handled == 4  # 1, 2, 4, 5: each once in effect


async def test_an_event_the_manifest_does_not_declare_is_refused(database: Database) -> None:
    with pytest.raises(UndeclaredEvent):
        await append(database, Unlisted(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC)))


async def test_events_of_one_entity_are_published_in_commit_order(database: Database) -> None:
    bus = RecordingBus()
    for n in range(1, 6):
        await append(database, ping("same", n), ping(f"other-{n}", 100 + n))
    await drain(make_relay(database, bus))
    assert bus.numbers("same") == [1, 2, 3, 4, 5]
    assert len(bus.published) == 10


async def test_one_round_takes_an_entitys_consecutive_events_in_order(database: Database) -> None:
    bus = RecordingBus()
    async with database.transaction() as connection:  # a burst: one transaction, one entity
        await make_outbox(database).append(connection, *(ping("burst", n) for n in range(1, 31)))
    await append(database, ping("other", 100))
    relay = make_relay(database, bus)
    assert await relay.relay_once() == 31
    assert bus.rounds == [31]
    assert bus.numbers("burst") == list(range(1, 31))
    assert await relay.relay_once() == 0


async def test_a_refused_event_holds_back_its_entitys_later_events_not_the_others(
    database: Database,
) -> None:
    bus = RecordingBus()
    first, refused, behind = ping("held", 1), ping("held", 2), ping("held", 3)
    bus.refuse.add(str(refused.event_id))
    await append(database, first, refused, behind, ping("free", 10))
    relay = make_relay(database, bus, backoff_initial_seconds=60.0, backoff_max_seconds=60.0)
    assert await relay.relay_once() == 4
    assert bus.numbers("held") == [1]
    assert bus.numbers("free") == [10]
    assert await relay.relay_once() == 0  # the refused one waits out its backoff; the one behind, with it
    async with database.read() as connection:
        rows = {
            row.event_id: row
            for row in await connection.execute(select(outbox).where(outbox.c.key == "held"))
        }
    assert (rows[refused.event_id].status, rows[refused.event_id].attempts) == ("pending", 1)
    assert (rows[behind.event_id].status, rows[behind.event_id].attempts) == ("pending", 0)
    assert rows[behind.event_id].claimed_by is None


async def test_a_refused_event_is_retried_then_marked_failed_and_can_be_resubmitted(
    database: Database,
) -> None:
    bus = RecordingBus()
    bad, good = ping("x", 1), ping("y", 2)
    bus.refuse.add(str(bad.event_id))
    await append(database, bad, good)
    relay = make_relay(database, bus, backoff_initial_seconds=0.0, backoff_max_seconds=0.0)
    for _ in range(SETTINGS.max_attempts + 2):
        await relay.relay_once()
    assert bus.numbers() == [2]
    status = await make_outbox(database).status()
    assert (status.pending, status.failed) == (0, 1)
    async with database.read() as connection:
        row = (await connection.execute(select(outbox).where(outbox.c.event_id == bad.event_id))).one()
    assert row.status == FAILED
    assert row.attempts == SETTINGS.max_attempts
    assert "refused" in row.last_error

    bus.refuse.clear()
    assert await make_outbox(database).retry_failed() == 1
    await drain(relay)
    assert sorted(bus.numbers()) == [1, 2]


async def test_a_refused_event_waits_out_its_backoff(database: Database) -> None:
    bus = RecordingBus()
    event = ping("x", 1)
    bus.refuse.add(str(event.event_id))
    await append(database, event)
    now = datetime.now(UTC)
    clock = [now]
    relay = make_relay(
        database, bus, clock=lambda: clock[0], backoff_initial_seconds=60.0, backoff_max_seconds=60.0
    )
    assert await relay.relay_once() == 1  # attempt 1, refused: next one in 60-120 s
    bus.refuse.clear()
    assert await relay.relay_once() == 0
    clock[0] = now + timedelta(seconds=121)
    assert await relay.relay_once() == 1
    assert bus.numbers() == [1]


async def test_while_the_broker_is_down_nothing_counts_against_the_events(database: Database) -> None:
    bus = RecordingBus()
    await append(database, ping("a", 1), ping("b", 2))
    relay = make_relay(database, bus)
    bus.down = True
    for _ in range(SETTINGS.max_attempts + 1):
        with pytest.raises(BusUnavailable):
            await relay.relay_once()
    status = await make_outbox(database).status()
    assert (status.pending, status.failed) == (2, 0)
    bus.down = False
    await drain(relay)
    assert sorted(bus.numbers()) == [1, 2]


async def test_a_claim_holds_until_its_lease_ends(database: Database) -> None:
    bus = RecordingBus()
    await append(database, ping("a", 1))
    now = datetime.now(UTC)
    clock = [now]
    dead = make_relay(database, bus, clock=lambda: clock[0], lease_seconds=30)
    claimed = await dead._claim()  # claims, then "dies" before publishing
    assert len(claimed) == 1
    survivor = make_relay(database, bus, clock=lambda: clock[0], lease_seconds=30)
    assert await survivor.relay_once() == 0
    clock[0] = now + timedelta(seconds=31)
    assert await survivor.relay_once() == 1
    assert bus.numbers() == [1]


async def test_published_rows_and_old_inbox_entries_are_pruned_after_the_retention(
    database: Database,
) -> None:
    consumer = EventConsumer(
        module="events_test", units=UnitsOfWork(UnitOfWork, database=database), subscriptions={}
    )
    bus = RecordingBus()
    await append(database, ping("a", 1))
    await drain(make_relay(database, bus))
    await append(database, ping("b", 2))  # still pending: never pruned
    async with database.transaction() as connection:
        await connection.execute(
            insert(inbox).values(
                event_id=uuid.uuid4(),
                event_type="x",
                source="y",
                handled_at=datetime.now(UTC) - timedelta(days=30),
            )
        )
    box = make_outbox(database)
    assert (await box.prune(timedelta(hours=1)), await consumer.prune(timedelta(hours=1))) == (0, 1)
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await box.prune(timedelta(hours=1), now=later) == 1
    assert await consumer.prune(timedelta(hours=1), now=later) == 0
    status = await box.status()
    assert (status.pending, status.published) == (1, 0)


async def test_status_reports_backlog_and_lag(database: Database) -> None:
    box = make_outbox(database)
    old = Pinged(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC) - timedelta(minutes=5), subject="a", n=1
    )
    await append(database, old, ping("b", 2))
    status = await box.status()
    assert status.pending == 2
    assert 290 <= status.lag_seconds <= 400
    assert status.oldest_pending_at == old.occurred_at


@pytest.mark.postgres
async def test_rows_committed_out_of_id_order_are_not_skipped(postgres_database: Database) -> None:
    # Only PostgreSQL: SQLite's single writer cannot commit transactions out of id order.
    database = postgres_database
    bus = RecordingBus()
    relay = make_relay(database, bus)
    async with database.engine.connect() as slow:
        await slow.begin()
        await make_outbox(database).append(slow, ping("slow", 1))  # takes the lower id, commits last
        await append(database, ping("fast", 2))
        await drain(relay)
        assert bus.numbers() == [2]
        await slow.commit()
    await drain(relay)
    assert bus.numbers() == [2, 1]


@pytest.mark.postgres
async def test_concurrent_relays_publish_each_event_once_and_keep_each_entity_in_order(
    postgres_database: Database,
) -> None:
    database = postgres_database
    bus = RecordingBus()
    for n in range(40):
        await append(database, *(ping(f"entity-{k}", n) for k in range(5)))
    relays = [make_relay(database, bus, relay_batch=7) for _ in range(4)]
    await asyncio.gather(*(drain(r) for r in relays))
    await asyncio.gather(*(drain(r) for r in relays))
    ids = [m.event_id for m in bus.published]
    assert len(ids) == len(set(ids)) == 200
    for k in range(5):
        assert bus.numbers(f"entity-{k}") == list(range(40))


class OverlapBus(RecordingBus):
    """Holds the first round it is given until a second one arrives: rounds seen side by side."""

    def __init__(self, expected: int) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self._second = asyncio.Event()
        self.expected = expected
        self.all_published = asyncio.Event()

    async def publish(self, message: EventMessage) -> None:
        await super().publish(message)
        if len(self.published) >= self.expected:
            self.all_published.set()

    async def publish_batch(self, messages: Sequence[EventMessage]) -> list[Outcome]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.in_flight > 1:
                self._second.set()
            else:
                with contextlib.suppress(TimeoutError):  # a relay of one round never sends a second
                    await asyncio.wait_for(self._second.wait(), 5)
            return await super().publish_batch(messages)
        finally:
            self.in_flight -= 1


async def test_a_relay_with_rounds_in_flight_publishes_each_event_once_in_each_entitys_order(
    database: Database,
) -> None:
    bus = OverlapBus(expected=100)
    for n in range(5):  # round after round of one event of each of 20 entities
        await append(database, *(ping(f"entity-{k}", n) for k in range(20)))
    relay = make_relay(database, bus, relay_batch=7, relay_rounds=2, publish_timeout_seconds=30)
    running = asyncio.create_task(relay.run())
    try:
        await asyncio.wait_for(bus.all_published.wait(), 30)
    finally:
        relay.stop()
        await running
    assert bus.most_in_flight == 2  # one round was published while another was out
    ids = [m.event_id for m in bus.published]
    assert len(ids) == len(set(ids)) == 100
    for k in range(20):
        assert bus.numbers(f"entity-{k}") == list(range(5))
