"""The event store: append-only streams in a module's own database, where history is the data.

A stream is one entity's history (``task-<id>``, ``user-<id>``). Each event in it has a
*version* (1, 2, ... within the stream) and a *position* (its place in the whole store).
An append names the version the stream is expected to be at; if another writer got there
first it raises :class:`StreamConflict` and writes nothing (optimistic concurrency).

Projections read the store in position order and keep a checkpoint, so positions must
become visible in order: a position committed after a higher one would be skipped. On
PostgreSQL an identity column does not promise that (a sequence value is taken at insert,
the row is seen at commit), so appends to one store take a transaction-scoped advisory
lock: one appender at a time, positions committed in order. SQLite has one writer anyway.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from sqlalchemy import String, column, func, insert, select, text, values

from app.kernel.clock import utcnow
from app.kernel.db import Database
from app.kernel.events.tables import stored_events

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ("EventStore", "NewEvent", "StoredEvent", "StreamConflict")

_COLUMNS = (
    stored_events.c.position,
    stored_events.c.stream,
    stored_events.c.version,
    stored_events.c.event_id,
    stored_events.c.event_type,
    stored_events.c.occurred_at,
    stored_events.c.recorded_at,
    stored_events.c.data,
)


class StreamConflict(Exception):
    """The stream is not at the version the append expected: someone else appended first."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(f"stream {stream} is at version {actual}, not {expected}")
        self.stream, self.expected, self.actual = stream, expected, actual


class NewEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event to append: its id (unique in the store), type, when it happened, its data."""

    event_id: UUID
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    position: int
    stream: str
    version: int
    event_id: UUID
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]  # as stored: sealed values still sealed


class EventStore:
    """One module's event store. Every method works in the unit of work the caller has open."""

    __slots__ = ("_database", "_listeners", "_lock")

    def __init__(self, *, database: Database) -> None:
        self._database = database
        self._listeners: list[Callable[[], None]] = []
        # One advisory lock per store: its schema's name, hashed to the lock's 64-bit key space.
        self._lock = zlib.crc32(f"tessera.event_store.{database.schema or database.module}".encode())

    def on_append(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` each time an append has committed (a projector waking up)."""
        self._listeners.append(listener)

    async def append(
        self, connection: AsyncConnection, stream: str, events: Sequence[NewEvent], *, expected_version: int
    ) -> int:
        """Append ``events`` to ``stream`` after ``expected_version`` (0: a new stream); the new version.

        Raises :class:`StreamConflict`, writing nothing, if the stream is at another version.
        """
        await self.append_to_streams(connection, {stream: (expected_version, events)})
        return expected_version + len(events)

    async def append_to_streams(
        self, connection: AsyncConnection, appends: Mapping[str, tuple[int, Sequence[NewEvent]]]
    ) -> None:
        """Append to several streams at once: ``{stream: (expected version, events)}``, all or none.

        One version check and one insert for them all; :class:`StreamConflict` names the first
        stream that is not at its expected version, and nothing is written.
        """
        appends = {stream: planned for stream, planned in appends.items() if planned[1]}
        if not appends:
            return
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._lock})
        actual = await self.versions(connection, list(appends))
        for stream, (expected, _) in appends.items():
            if actual[stream] != expected:
                raise StreamConflict(stream, expected, actual[stream])
        now = utcnow()
        await connection.execute(
            insert(stored_events),
            [
                {
                    "stream": stream,
                    "version": expected + offset,
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "occurred_at": event.occurred_at,
                    "recorded_at": now,
                    "data": msgspec.json.encode(event.data).decode(),
                }
                for stream, (expected, events) in appends.items()
                for offset, event in enumerate(events, start=1)
            ],
        )
        for listener in self._listeners:
            Database.after_commit(connection, listener)

    @staticmethod
    async def version(connection: AsyncConnection, stream: str) -> int:
        """The stream's current version: how many events it holds (0 if none)."""
        statement = select(func.coalesce(func.max(stored_events.c.version), 0)).where(
            stored_events.c.stream == stream
        )
        return int((await connection.execute(statement)).scalar_one())

    @staticmethod
    async def versions(connection: AsyncConnection, streams: Sequence[str]) -> dict[str, int]:
        """The current version of each of ``streams`` (0 for one that does not exist yet).

        On PostgreSQL, one index probe per stream (its last version, LIMIT 1), whatever the
        planner's statistics say: a store filling faster than they refresh was read whole.
        SQLite's planner takes the index for the IN list by itself.
        """
        if not streams:
            return {}
        if connection.dialect.name == "postgresql":
            asked = values(column("stream", String()), name="asked").data([(s,) for s in set(streams)])
            last = (
                select(stored_events.c.version)
                .where(stored_events.c.stream == asked.c.stream)
                .order_by(stored_events.c.version.desc())
                .limit(1)
                .scalar_subquery()
            )
            statement = select(asked.c.stream, last)
        else:
            statement = (
                select(stored_events.c.stream, func.max(stored_events.c.version))
                .where(stored_events.c.stream.in_(set(streams)))
                .group_by(stored_events.c.stream)
            )
        found = {row[0]: int(row[1] or 0) for row in await connection.execute(statement)}
        return {stream: found.get(stream, 0) for stream in streams}

    @staticmethod
    async def read_stream(
        connection: AsyncConnection, stream: str, *, occurred_until: datetime | None = None
    ) -> list[StoredEvent]:
        """The stream's events in version order; with ``occurred_until``, those that happened by then."""
        statement = select(*_COLUMNS).where(stored_events.c.stream == stream)
        if occurred_until is not None:
            statement = statement.where(stored_events.c.occurred_at <= occurred_until)
        rows = await connection.execute(statement.order_by(stored_events.c.version))
        return [_stored(row) for row in rows]

    @staticmethod
    async def read_all(connection: AsyncConnection, *, after: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events of every stream after position ``after``, in position order."""
        statement = (
            select(*_COLUMNS)
            .where(stored_events.c.position > after)
            .order_by(stored_events.c.position)
            .limit(limit)
        )
        return [_stored(row) for row in await connection.execute(statement)]

    @staticmethod
    async def head(connection: AsyncConnection) -> int:
        """The position of the store's last event (0 when empty)."""
        statement = select(func.coalesce(func.max(stored_events.c.position), 0))
        return int((await connection.execute(statement)).scalar_one())


def _stored(row: Any) -> StoredEvent:
    return StoredEvent(
        position=row.position,
        stream=row.stream,
        version=row.version,
        event_id=row.event_id,
        event_type=row.event_type,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        data=msgspec.json.decode(row.data),
    )
