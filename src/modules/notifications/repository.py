"""Queries over the notifications table, inside the unit of work the caller opened."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, delete, func, insert, literal, select, tuple_, update

from app.kernel.pagination import decode_cursor, encode_cursor
from app.kernel.unit_of_work import UnitOfWork
from contracts.notifications import Notification, NotificationKind, NotificationQuery
from modules.notifications.tables import notifications

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ("NotificationsRepository", "NotificationsUnit")

_COLUMNS = tuple(c for c in notifications.c)
_NEWEST_FIRST = (notifications.c.created_at.desc(), notifications.c.id.desc())


class _Cursor(msgspec.Struct, frozen=True, array_like=True):
    """Where the previous page ended: its last notification's date and id."""

    created_at: Annotated[datetime, msgspec.Meta(tz=True)]  # a naive one is forged: refuse it
    id: UUID


class NotificationsRepository:
    __slots__ = ("_connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add(self, found: Sequence[Notification]) -> None:
        if found:
            await self._connection.execute(insert(notifications), [_row(n) for n in found])

    async def get_for(self, user_id: UUID, notification_id: UUID) -> Notification | None:
        statement = select(*_COLUMNS).where(
            notifications.c.id == notification_id, notifications.c.user_id == user_id
        )
        row = (await self._connection.execute(statement)).first()
        return None if row is None else _notification(row._mapping)

    async def page_for(
        self, user_id: UUID, query: NotificationQuery
    ) -> tuple[list[Notification], str | None]:
        """One page of ``user_id``'s notifications, newest first, and the cursor after it."""
        conditions: list[ColumnElement[bool]] = [notifications.c.user_id == user_id]
        if query.unread:
            conditions.append(notifications.c.read_at.is_(None))
        if query.cursor is not None:
            cursor = decode_cursor(query.cursor, _Cursor)
            boundary = tuple_(
                literal(cursor.created_at, notifications.c.created_at.type),
                literal(cursor.id, notifications.c.id.type),
            )
            conditions.append(tuple_(notifications.c.created_at, notifications.c.id) < boundary)
        statement = select(*_COLUMNS).where(*conditions).order_by(*_NEWEST_FIRST).limit(query.limit + 1)
        rows = (await self._connection.execute(statement)).all()
        page, more = rows[: query.limit], len(rows) > query.limit
        next_cursor = encode_cursor(_Cursor(page[-1].created_at, page[-1].id)) if more else None
        return [_notification(row._mapping) for row in page], next_cursor

    async def mark_read(self, user_id: UUID, notification_id: UUID, *, at: datetime) -> None:
        """Mark one notification read at ``at``, unless it was read already: the first reading stays."""
        await self._connection.execute(
            update(notifications)
            .where(
                notifications.c.id == notification_id,
                notifications.c.user_id == user_id,
                notifications.c.read_at.is_(None),
            )
            .values(read_at=at)
        )

    async def mark_all_read(self, user_id: UUID, *, at: datetime) -> int:
        """Mark every unread notification of ``user_id`` read; how many there were."""
        result = await self._connection.execute(
            update(notifications)
            .where(notifications.c.user_id == user_id, notifications.c.read_at.is_(None))
            .values(read_at=at)
        )
        return int(result.rowcount)

    async def delete_all_of(self, user_id: UUID) -> int:
        result = await self._connection.execute(
            delete(notifications).where(notifications.c.user_id == user_id)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def count_unread(self, user_id: UUID) -> int:
        statement = select(func.count()).where(
            notifications.c.user_id == user_id, notifications.c.read_at.is_(None)
        )
        return int((await self._connection.execute(statement)).scalar_one())


def _row(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id,
        "user_id": notification.user_id,
        "kind": notification.kind.value,
        "task_id": notification.task_id,
        "task_title": notification.task_title,
        "actor_id": notification.actor_id,
        "created_at": notification.created_at,
        "read_at": notification.read_at,
        "event_id": notification.event_id,
    }


def _notification(row: Any) -> Notification:
    return Notification(
        id=row["id"],
        user_id=row["user_id"],
        kind=NotificationKind(row["kind"]),
        task_id=row["task_id"],
        task_title=row["task_title"],
        actor_id=row["actor_id"],
        created_at=row["created_at"],
        read_at=row["read_at"],
        event_id=row["event_id"],
    )


class NotificationsUnit(UnitOfWork):
    """A unit of work of the notifications module: its users' notifications."""

    def __init__(self, connection: AsyncConnection, *, writable: bool) -> None:
        super().__init__(connection, writable=writable)
        self.notifications = NotificationsRepository(connection)
