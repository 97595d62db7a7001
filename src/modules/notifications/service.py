"""The notifications service: implements NotificationsApi and the module's own reading and delivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from app.kernel.clock import Clock, utcnow
from contracts import PAGE_LIMIT_MAX, FieldError, InvalidInput, Principal
from contracts.notifications import (
    InboxDeleted,
    MarkedRead,
    Notification,
    NotificationNotFound,
    NotificationPage,
    NotificationQuery,
    NotificationsApi,
    UnreadCount,
)
from modules.notifications.repository import NotificationsUnit

if TYPE_CHECKING:
    from app.kernel.unit_of_work import UnitsOfWork

__all__ = ("NotificationsService",)


class NotificationsService(NotificationsApi):
    def __init__(self, *, units: UnitsOfWork[NotificationsUnit], clock: Clock = utcnow) -> None:
        self._units = units
        self._clock = clock

    # -- NotificationsApi --------------------------------------------------------------

    async def list_notifications(self, principal: Principal, query: NotificationQuery) -> NotificationPage:
        if not 1 <= query.limit <= PAGE_LIMIT_MAX:
            raise InvalidInput([FieldError(field="limit", message=f"must be 1 to {PAGE_LIMIT_MAX}")])
        async with self._units.read() as unit:
            items, next_cursor = await unit.notifications.page_for(principal.user_id, query)
        return NotificationPage(items=items, next_cursor=next_cursor)

    async def unread_count(self, principal: Principal) -> UnreadCount:
        async with self._units.read() as unit:
            unread = await unit.notifications.count_unread(principal.user_id)
        return UnreadCount(unread=unread)

    async def mark_read(self, principal: Principal, notification_id: UUID) -> Notification:
        """The notification, read; reading it again keeps the first ``read_at``."""
        async with self._units.write() as unit:
            await unit.notifications.mark_read(principal.user_id, notification_id, at=self._clock())
            notification = await unit.notifications.get_for(principal.user_id, notification_id)
        if notification is None:
            raise NotificationNotFound(f"no notification {notification_id}")
        return notification

    async def mark_all_read(self, principal: Principal) -> MarkedRead:
        """Mark every unread notification of the principal read; how many there were."""
        async with self._units.write() as unit:
            marked = await unit.notifications.mark_all_read(principal.user_id, at=self._clock())
        return MarkedRead(marked=marked)

    async def delete_inbox(self, user_id: UUID, step_key: str) -> InboxDeleted:
        async with self._units.write() as unit:
            deleted = await unit.notifications.delete_all_of(user_id)
        await self._units.expunge("notifications")  # no older copy of them left in the files
        return InboxDeleted(user_id=user_id, deleted=deleted)

    async def deliver(self, notifications: Sequence[Notification], *, unit: NotificationsUnit) -> None:
        """Put notifications in their users' inboxes, in the unit of work an event handler has open."""
        if notifications:
            await unit.notifications.add(notifications)
