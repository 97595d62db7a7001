"""An in-memory NotificationsApi for the tests of modules that call notifications."""

from __future__ import annotations

import uuid
from uuid import UUID

import msgspec

from app.kernel.clock import utcnow
from contracts import FieldError, InvalidInput, Principal
from contracts.notifications import (
    InboxDeleted,
    MarkedRead,
    Notification,
    NotificationKind,
    NotificationNotFound,
    NotificationPage,
    NotificationQuery,
    NotificationsApi,
    UnreadCount,
)

__all__ = ("FakeNotifications",)


class FakeNotifications(NotificationsApi):
    def __init__(self) -> None:
        self._inbox: list[Notification] = []
        self.failures: list[BaseException] = []  # raised in turn by delete_inbox

    def notify(self, user_id: UUID, *, title: str = "A task") -> Notification:
        notification = Notification(
            id=uuid.uuid4(),
            user_id=user_id,
            kind=NotificationKind.TASK_ASSIGNED,
            task_id=uuid.uuid4(),
            task_title=title,
            actor_id=None,
            created_at=utcnow(),
            read_at=None,
            event_id=uuid.uuid4(),
        )
        self._inbox.append(notification)
        return notification

    def of(self, user_id: UUID) -> list[Notification]:
        return [n for n in self._inbox if n.user_id == user_id]

    async def list_notifications(self, principal: Principal, query: NotificationQuery) -> NotificationPage:
        mine = [n for n in reversed(self._inbox) if n.user_id == principal.user_id]
        mine = [n for n in mine if not query.unread or n.read_at is None]
        try:
            start = int(query.cursor or 0)
        except ValueError:
            raise InvalidInput([FieldError(field="cursor", message="not a cursor this API issued")]) from None
        more = start + query.limit < len(mine)
        return NotificationPage(
            items=mine[start : start + query.limit], next_cursor=str(start + query.limit) if more else None
        )

    async def unread_count(self, principal: Principal) -> UnreadCount:
        return UnreadCount(unread=sum(1 for n in self.of(principal.user_id) if n.read_at is None))

    async def delete_inbox(self, user_id: UUID, step_key: str) -> InboxDeleted:
        if self.failures:
            raise self.failures.pop(0)
        deleted = len(self.of(user_id))
        self._inbox = [n for n in self._inbox if n.user_id != user_id]
        return InboxDeleted(user_id=user_id, deleted=deleted)

    async def mark_read(self, principal: Principal, notification_id: UUID) -> Notification:
        for i, n in enumerate(self._inbox):
            if n.id == notification_id and n.user_id == principal.user_id:
                if n.read_at is None:
                    self._inbox[i] = msgspec.structs.replace(n, read_at=utcnow())
                return self._inbox[i]
        raise NotificationNotFound(f"no notification {notification_id}")

    async def mark_all_read(self, principal: Principal) -> MarkedRead:
        unread = [n.id for n in self.of(principal.user_id) if n.read_at is None]
        for n_id in unread:
            await self.mark_read(principal, n_id)
        return MarkedRead(marked=len(unread))
