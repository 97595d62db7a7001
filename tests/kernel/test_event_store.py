"""The kernel's event store and projections: versions, conflicts, positions, checkpoints, rebuilds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from app.kernel.clock import utcnow
from app.kernel.db import Database
from app.kernel.events.projections import Projection, Projector
from app.kernel.events.shredding import Keyring, SubjectKeys, sealed_subjects
from app.kernel.events.store import EventStore, NewEvent, StoredEvent, StreamConflict
from app.kernel.events.tables import metadata as kernel_tables
from tests.kernel.scratch import scratch_database

SCHEMA = "store_test"

projected = MetaData()


def _counts_table(name: str) -> Table:
    """A read model: how many events each stream has, as a projection counts them."""
    return Table(
        name,
        projected,
        Column("stream", String(120), primary_key=True),
        Column("events", Integer, nullable=False),
    )


counts = _counts_table("stream_counts")
other_counts = _counts_table("other_stream_counts")


class Counting(Projection):
    name = "counts"

    def __init__(self, table: Table = counts) -> None:
        super().__init__({"counts": table})
        self.fail_at: int | None = None  # a position whose batch raises, as a bad event would

    async def apply(self, connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        table = self.tables["counts"]
        for event in events:
            if event.position == self.fail_at:
                raise RuntimeError("this event cannot be applied")
            changed = await connection.execute(
                update(table).where(table.c.stream == event.stream).values(events=table.c.events + 1)
            )
            if not changed.rowcount:
                await connection.execute(table.insert().values(stream=event.stream, events=1))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with scratch_database(request, tmp_path, SCHEMA, kernel_tables, projected) as database:
        yield database


def new(n: int = 1, **data: Any) -> list[NewEvent]:
    return [
        NewEvent(
            event_id=uuid.uuid4(), event_type="test.Happened.v1", occurred_at=utcnow(), data={"n": i, **data}
        )
        for i in range(n)
    ]


async def test_a_stream_numbers_its_events_and_the_store_orders_them_all(database: Database) -> None:
    store = EventStore(database=database)
    async with database.transaction() as connection:
        assert await store.append(connection, "a", new(2), expected_version=0) == 2
        assert await store.append(connection, "b", new(1), expected_version=0) == 1
        assert await store.append(connection, "a", new(1), expected_version=2) == 3
    async with database.read() as connection:
        stream = await EventStore.read_stream(connection, "a")
        everything = await EventStore.read_all(connection, after=0, limit=10)
        assert await EventStore.versions(connection, ["a", "b", "c"]) == {"a": 3, "b": 1, "c": 0}
        assert await EventStore.head(connection) == everything[-1].position
    assert [e.version for e in stream] == [1, 2, 3]
    assert [e.data["n"] for e in stream] == [0, 1, 0]
    assert [e.stream for e in everything] == ["a", "a", "b", "a"]
    assert [e.position for e in everything] == sorted(e.position for e in everything)


async def test_an_append_behind_the_stream_is_refused_and_writes_nothing(database: Database) -> None:
    store = EventStore(database=database)
    async with database.transaction() as connection:
        await store.append(connection, "a", new(2), expected_version=0)
    with pytest.raises(StreamConflict) as raised:
        async with database.transaction() as connection:
            await store.append(connection, "a", new(3), expected_version=1)
    assert (raised.value.expected, raised.value.actual) == (1, 2)
    async with database.read() as connection:
        assert [e.version for e in await EventStore.read_stream(connection, "a")] == [1, 2]


async def test_of_writers_who_read_the_same_version_exactly_one_appends(database: Database) -> None:
    """Optimistic concurrency: eight writers read version 1, then all append at once."""
    store = EventStore(database=database)
    async with database.transaction() as connection:
        await store.append(connection, "a", new(1), expected_version=0)
    async with database.read() as connection:
        seen = await EventStore.version(connection, "a")
    start = asyncio.Event()

    async def writer(i: int) -> str:
        await start.wait()
        try:
            async with database.transaction() as connection:
                await store.append(connection, "a", new(1, writer=i), expected_version=seen)
        except StreamConflict:
            return "refused"
        return "appended"

    writers = [asyncio.create_task(writer(i)) for i in range(8)]
    start.set()
    outcomes = await asyncio.gather(*writers)
    assert sorted(outcomes) == ["appended"] + ["refused"] * 7
    async with database.read() as connection:
        stream = await EventStore.read_stream(connection, "a")
    assert [e.version for e in stream] == [1, 2]
    assert stream[1].data["writer"] == outcomes.index("appended")


async def test_a_reader_following_positions_never_skips_an_event_appended_concurrently(
    database: Database,
) -> None:
    """Positions become visible in order: what a checkpoint has passed, nobody commits later."""
    store = EventStore(database=database)
    appended: list[uuid.UUID] = []

    async def appender(stream: str) -> None:
        for _ in range(15):
            events = new(1)
            async with database.transaction() as connection:
                version = await EventStore.version(connection, stream)
                await store.append(connection, stream, events, expected_version=version)
            appended.append(events[0].event_id)

    seen: list[uuid.UUID] = []
    checkpoint = 0
    writers = asyncio.gather(*(appender(f"s{i}") for i in range(6)))
    while not writers.done() or checkpoint < await _head(database):
        async with database.read() as connection:
            batch = await EventStore.read_all(connection, after=checkpoint, limit=7)
        if batch:
            seen += [e.event_id for e in batch]
            checkpoint = batch[-1].position
        else:  # poll again in a moment: a follower spinning without pause starved the writers on SQLite
            await asyncio.sleep(0.001)  # (90 appends took 8 s here, 120 s in CI, instead of 0.3 s)
    await writers
    assert sorted(seen) == sorted(appended)  # every one, once
    assert len(seen) == 90


async def _head(database: Database) -> int:
    async with database.read() as connection:
        return await EventStore.head(connection)


async def _counts(database: Database, table: Table = counts) -> dict[str, int]:
    async with database.read() as connection:
        return {row.stream: row.events for row in await connection.execute(select(table))}


async def _fill(store: EventStore, database: Database, streams: dict[str, int]) -> None:
    async with database.transaction() as connection:
        for stream, n in streams.items():
            version = await EventStore.version(connection, stream)
            await store.append(connection, stream, new(n), expected_version=version)


async def test_a_projection_applies_each_event_once_and_a_failed_batch_leaves_no_trace(
    database: Database,
) -> None:
    store = EventStore(database=database)
    projection = Counting()
    projector = Projector(database=database, store=store, projections=[projection], batch=4)
    await _fill(store, database, {"a": 3, "b": 2})
    assert await projector.catch_up() == 5
    assert await projector.catch_up() == 0  # nothing new: nothing applied again
    assert await _counts(database) == {"a": 3, "b": 2}
    await _fill(store, database, {"a": 2, "c": 3})
    projection.fail_at = await _head(database)  # the last batch (of 1) fails ...
    with pytest.raises(RuntimeError):
        await projector.catch_up()
    assert await _counts(database) == {"a": 5, "b": 2, "c": 2}  # ... the batch before it stays
    (status,) = await projector.status()
    assert (status.head - status.position, status.lag) == (1, 1)
    projection.fail_at = None
    await projector.catch_up()
    assert await _counts(database) == {"a": 5, "b": 2, "c": 3}
    (status,) = await projector.status()
    assert (status.lag, status.rows) == (0, 3)


class OtherCounting(Counting):
    name = "other_counts"

    def __init__(self) -> None:
        super().__init__(other_counts)


async def test_projections_go_together_and_one_that_fails_holds_back_only_itself(database: Database) -> None:
    store = EventStore(database=database)
    failing, healthy = Counting(), OtherCounting()
    projector = Projector(database=database, store=store, projections=[failing, healthy], batch=4)
    await _fill(store, database, {"a": 3, "b": 2})
    failing.fail_at = 2  # in its first batch: it applies nothing
    with pytest.raises(RuntimeError):
        await projector.catch_up()
    assert await _counts(database, other_counts) == {"a": 3, "b": 2}  # the round went on without it
    assert await _counts(database) == {}
    lags = {status.name: status.lag for status in await projector.status()}
    assert lags == {"counts": 5, "other_counts": 0}
    failing.fail_at = None
    assert await projector.catch_up() == 5  # read once for both: the one behind catches up alone
    assert await _counts(database) == await _counts(database, other_counts) == {"a": 3, "b": 2}
    assert {status.lag for status in await projector.status()} == {0}


async def test_the_running_projector_catches_up_when_an_append_commits(database: Database) -> None:
    store = EventStore(database=database)
    projection = Counting()
    applied = asyncio.Event()
    counted = projection.apply

    async def apply(connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        await counted(connection, events)
        applied.set()

    projection.apply = apply  # type: ignore[method-assign]
    projector = Projector(database=database, store=store, projections=[projection], poll_seconds=60)
    await projector.start()
    try:
        await _fill(store, database, {"a": 2})
        await asyncio.wait_for(applied.wait(), 5)  # woken by the commit, not by its minute-long poll
        assert await projector.catch_up() == 0  # waits for the live round's commit: nothing left
        assert await _counts(database) == {"a": 2}
    finally:
        await projector.stop()


async def test_a_rebuild_beside_live_appends_ends_equal_to_the_projection_built_live(
    database: Database,
) -> None:
    store = EventStore(database=database)
    projection = Counting()
    projector = Projector(database=database, store=store, projections=[projection], batch=10)
    await _fill(store, database, {f"s{i}": i + 1 for i in range(8)})
    await projector.catch_up()
    # A read model that went wrong (a bug fixed since): the rebuild must replace it, not add to it.
    async with database.transaction() as connection:
        await connection.execute(update(counts).values(events=999))
    reported: list[tuple[int, int]] = []

    async def keep_appending() -> None:
        for round_ in range(5):
            await _fill(store, database, {"s0": 1, f"new{round_}": 2})
            await projector.catch_up()

    live = asyncio.create_task(keep_appending())
    await projector.rebuild("counts", progress=lambda position, head: reported.append((position, head)))
    await live
    await projector.catch_up()
    async with database.read() as connection:
        truth: dict[str, int] = {}
        for event in await EventStore.read_all(connection, after=0, limit=10_000):
            truth[event.stream] = truth.get(event.stream, 0) + 1
        leftovers = await connection.run_sync(
            lambda sync: [n for n in sync.dialect.get_table_names(sync) if n.endswith("__rebuild")]
        )
    assert await _counts(database) == truth
    assert leftovers == []
    assert reported
    assert all(position <= head for position, head in reported)
    (status,) = await projector.status()
    assert status.lag == 0


async def test_sealed_values_open_until_their_subject_is_erased(database: Database) -> None:
    ada, bob = uuid.uuid4(), uuid.uuid4()
    async with database.transaction() as connection:
        keyring = await SubjectKeys.keyring(connection, [ada, bob])
        data = {
            "name": keyring.seal(ada, "Ada Lovelace", erased_as="deleted user"),
            "labels": keyring.seal(bob, ["x", "y"]),
            "plain": 1,
        }
        await SubjectKeys.keep(connection, keyring)
    assert "Ada" not in str(data)
    assert sealed_subjects(data) == {ada, bob}
    async with database.read() as connection:
        opened = (await SubjectKeys.keyring(connection, sealed_subjects(data))).open(data)
    assert opened == {"name": "Ada Lovelace", "labels": ["x", "y"], "plain": 1}
    async with database.transaction() as connection:
        assert await SubjectKeys.erase(connection, ada) is True
        assert await SubjectKeys.erase(connection, ada) is False  # again: nothing left, no error
    async with database.read() as connection:
        keyring = await SubjectKeys.keyring(connection, sealed_subjects(data))
    assert keyring.open(data) == {"name": "deleted user", "labels": ["x", "y"], "plain": 1}
    assert Keyring({}).open(data)["labels"] is None  # sealed without a placeholder: nothing
    # What comes about them after the erasure is sealed as erased, not under a new key.
    async with database.transaction() as connection:
        late = await SubjectKeys.keyring(connection, [ada])
        sealed = late.seal(ada, "Ada again", erased_as="deleted user")
        await SubjectKeys.keep(connection, late)
    async with database.read() as connection:
        assert (await SubjectKeys.keyring(connection, [ada])).open(sealed) == "deleted user"
    keys = kernel_tables.tables["subject_keys"]
    async with database.read() as connection:
        rows = (await connection.execute(select(keys.c.subject, func.length(keys.c.key)))).all()
    assert sorted(length for _, length in rows) == [0, 32]  # ada's tombstone, and the other's key
