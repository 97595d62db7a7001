"""The notifications service: implements NotificationsApi and the module's own reading and delivery."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from contracts import FieldError, InvalidInput, Principal
from contracts.notifications import (
    Notification,
    NotificationNotFound,
    NotificationPage,
    NotificationQuery,
    NotificationsApi,
    UnreadCount,
)
from modules.notifications.repository import NotificationsRepository

if TYPE_CHECKING:
    from app.kernel.db import Database

__all__ = ("MAX_PAGE", "NotificationsService")

MAX_PAGE = 100


def _utcnow() -> datetime:
    return datetime.now(UTC)


class NotificationsService(NotificationsApi):
    def __init__(self, *, database: Database, clock: Callable[[], datetime] = _utcnow) -> None:
        self._database = database
        self._clock = clock

    # -- NotificationsApi --------------------------------------------------------------

    async def list_notifications(self, principal: Principal, query: NotificationQuery) -> NotificationPage:
        if not 1 <= query.limit <= MAX_PAGE:
            raise InvalidInput([FieldError(field="limit", message=f"must be 1 to {MAX_PAGE}")])
        async with self._database.read() as connection:
            items, next_cursor = await NotificationsRepository(connection).page_for(principal.user_id, query)
        return NotificationPage(items=items, next_cursor=next_cursor)

    async def unread_count(self, principal: Principal) -> UnreadCount:
        async with self._database.read() as connection:
            unread = await NotificationsRepository(connection).count_unread(principal.user_id)
        return UnreadCount(unread=unread)

    # -- the module's own operations ---------------------------------------------------

    async def mark_read(self, principal: Principal, notification_id: UUID) -> Notification:
        """The notification, read; reading it again keeps the first ``read_at``."""
        async with self._database.transaction() as connection:
            repository = NotificationsRepository(connection)
            await repository.mark_read(principal.user_id, notification_id, at=self._clock())
            notification = await repository.get_for(principal.user_id, notification_id)
        if notification is None:
            raise NotificationNotFound(f"no notification {notification_id}")
        return notification

    async def mark_all_read(self, principal: Principal) -> int:
        """Mark every unread notification of the principal read; how many there were."""
        async with self._database.transaction() as connection:
            return await NotificationsRepository(connection).mark_all_read(
                principal.user_id, at=self._clock()
            )

    async def deliver(self, notifications: Sequence[Notification]) -> None:
        """Put notifications in their users' inboxes, in the unit of work an event handler has open."""
        if not notifications:
            return
        async with self._database.transaction() as connection:
            await NotificationsRepository(connection).add(notifications)
