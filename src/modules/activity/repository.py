"""Queries over activity's read models, inside the unit of work the caller opened."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, Table, select

from app.kernel.events.shredding import Keyring, SubjectKeys, sealed_subjects
from app.kernel.events.store import EventStore, NewEvent, StoredEvent
from app.kernel.pagination import decode_cursor, encode_cursor
from app.kernel.unit_of_work import UnitOfWork
from contracts.activity import ActivityKind
from modules.activity.domain import StatMark
from modules.activity.tables import audit, feed, stat_marks, timeline

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ("ActivityRepository", "ActivityUnit", "EntryRow", "History", "Page")


class _Cursor(msgspec.Struct, frozen=True, array_like=True):
    """Where the previous page ended: its last entry's position in the store."""

    position: int


class EntryRow(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as a read model keeps it: its data's personal values still sealed."""

    event_id: UUID
    kind: ActivityKind
    actor_id: UUID | None
    task_id: UUID | None
    user_id: UUID | None
    occurred_at: datetime
    data: dict[str, Any]


class Page(msgspec.Struct, frozen=True, kw_only=True):
    rows: list[EntryRow]
    next_cursor: str | None


class ActivityRepository:
    __slots__ = ("_connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def timeline(
        self, task_id: UUID, *, limit: int, cursor: str | None, as_of: datetime | None = None
    ) -> Page:
        conditions = [timeline.c.task_id == task_id]
        if as_of is not None:
            conditions.append(timeline.c.occurred_at <= as_of)
        return await self._page(timeline, conditions, limit=limit, cursor=cursor)

    async def feed(self, member_id: UUID, *, limit: int, cursor: str | None) -> Page:
        return await self._page(feed, [feed.c.member_id == member_id], limit=limit, cursor=cursor)

    async def audit(self, *, limit: int, cursor: str | None) -> Page:
        return await self._page(audit, [], limit=limit, cursor=cursor)

    async def marks(self, user_id: UUID, weeks: Sequence[str]) -> list[StatMark]:
        statement = select(stat_marks.c.week, stat_marks.c.kind, stat_marks.c.hours_to_done).where(
            stat_marks.c.user_id == user_id, stat_marks.c.week.in_(weeks)
        )
        return [
            StatMark(user_id=user_id, week=row.week, kind=row.kind, hours_to_done=row.hours_to_done)
            for row in await self._connection.execute(statement)
        ]

    async def _page(
        self, table: Table, conditions: list[ColumnElement[bool]], *, limit: int, cursor: str | None
    ) -> Page:
        """Newest first (the store's position order), ``limit`` at a time."""
        if cursor is not None:
            conditions = [*conditions, table.c.position < decode_cursor(cursor, _Cursor).position]
        statement = (
            select(
                table.c.position,
                table.c.event_id,
                table.c.kind,
                table.c.actor_id,
                table.c.task_id,
                table.c.user_id,
                table.c.occurred_at,
                table.c.data,
            )
            .where(*conditions)
            .order_by(table.c.position.desc())
            .limit(limit + 1)
        )
        rows = (await self._connection.execute(statement)).all()
        page, more = rows[:limit], len(rows) > limit
        return Page(
            rows=[
                EntryRow(
                    event_id=row.event_id,
                    kind=ActivityKind(row.kind),
                    actor_id=row.actor_id,
                    task_id=row.task_id,
                    user_id=row.user_id,
                    occurred_at=row.occurred_at,
                    data=msgspec.json.decode(row.data),
                )
                for row in page
            ],
            next_cursor=encode_cursor(_Cursor(page[-1].position)) if more else None,
        )


class History:
    """The module's event store and its subjects' data keys, in one unit of work."""

    __slots__ = ("_connection", "_store")

    def __init__(self, store: EventStore, connection: AsyncConnection) -> None:
        self._store = store
        self._connection = connection

    async def append(self, appends: Mapping[str, tuple[int, Sequence[NewEvent]]]) -> None:
        """``{stream: (expected version, events)}``, appended together; StreamConflict if one moved."""
        await self._store.append_to_streams(self._connection, appends)

    async def versions(self, streams: Sequence[str]) -> dict[str, int]:
        return await EventStore.versions(self._connection, streams)

    async def stream(self, stream: str, *, occurred_until: datetime | None = None) -> list[StoredEvent]:
        return await EventStore.read_stream(self._connection, stream, occurred_until=occurred_until)

    async def keyring(self, values: Iterable[Any]) -> Keyring:
        """The keys that open the sealed values in ``values`` (erased ones are not there)."""
        return await SubjectKeys.keyring(self._connection, sealed_subjects(list(values)))

    async def keyring_of(self, subjects: Iterable[UUID]) -> Keyring:
        return await SubjectKeys.keyring(self._connection, subjects)

    async def keep(self, keyring: Keyring) -> None:
        await SubjectKeys.keep(self._connection, keyring)

    async def erase(self, subject: UUID) -> bool:
        return await SubjectKeys.erase(self._connection, subject)


class ActivityUnit(UnitOfWork):
    """A unit of work of the activity module: its event store (history) and read models (activity)."""

    def __init__(self, connection: AsyncConnection, *, writable: bool, store: EventStore) -> None:
        super().__init__(connection, writable=writable)
        self.history = History(store, connection)
        self.activity = ActivityRepository(connection)
