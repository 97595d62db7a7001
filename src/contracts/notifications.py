"""The notifications contract: each user's in-app inbox, as other modules may read it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import PAGE_LIMIT_DEFAULT, Contract, ContractError, PageLimit, Principal, idempotent

__all__ = (
    "NOTIFICATIONS",
    "Notification",
    "NotificationKind",
    "NotificationNotFound",
    "NotificationPage",
    "InboxDeleted",
    "MarkedRead",
    "NotificationQuery",
    "NotificationsApi",
    "UnreadCount",
)


class NotificationKind(enum.StrEnum):
    TASK_ASSIGNED = "task_assigned"
    TASK_STATUS_CHANGED = "task_status_changed"
    TASK_COMPLETED = "task_completed"
    TASK_HANDED_OVER = "task_handed_over"  # contract 1.1: a closed account's task is yours now


class Notification(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Something that happened to a task, told to one user; ``actor_id`` None: the system did it."""

    id: UUID
    user_id: UUID
    kind: NotificationKind
    task_id: UUID
    task_title: str
    actor_id: UUID | None
    created_at: datetime  # when the event happened, not when it was delivered
    read_at: datetime | None
    event_id: UUID  # the integration event that caused it


class NotificationQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which of a user's notifications to list, newest first, from where."""

    unread: bool = False  # True: only those not yet read
    limit: PageLimit = PAGE_LIMIT_DEFAULT
    cursor: str | None = None


class NotificationPage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    items: list[Notification]
    next_cursor: str | None


class UnreadCount(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    unread: int


class MarkedRead(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What marking every notification read did (contract 1.2)."""

    marked: int  # how many notifications were unread until now


class InboxDeleted(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What deleting a user's inbox removed (contract 1.1)."""

    user_id: UUID
    deleted: int


class NotificationNotFound(ContractError):
    """No such notification, or one of another user's: the two look the same."""

    code = "notifications.not_found"
    status = 404
    title = "No such notification"


@runtime_checkable
class NotificationsApi(Protocol):
    @idempotent
    async def list_notifications(self, principal: Principal, query: NotificationQuery) -> NotificationPage:
        """The principal's notifications, newest first, one page at a time."""
        ...

    @idempotent
    async def unread_count(self, principal: Principal) -> UnreadCount:
        """How many of the principal's notifications are not yet read."""
        ...

    @idempotent
    async def mark_read(self, principal: Principal, notification_id: UUID) -> Notification:
        """One of the principal's notifications, read (contract 1.2); reading it again keeps the
        first ``read_at``. Raises NotificationNotFound for another user's."""
        ...

    @idempotent
    async def mark_all_read(self, principal: Principal) -> MarkedRead:
        """Mark every unread notification of the principal read (contract 1.2)."""
        ...

    @idempotent
    async def delete_inbox(self, user_id: UUID, step_key: str) -> InboxDeleted:
        """Delete every notification of ``user_id`` (contract 1.1): their account closed."""
        ...


NOTIFICATIONS: Contract[NotificationsApi] = Contract(
    name="notifications",
    version="1.2",  # 1.1: delete_inbox, the task_handed_over kind; 1.2: mark_read, mark_all_read
    api=NotificationsApi,
    errors=(NotificationNotFound,),
)
