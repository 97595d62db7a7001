"""Who is told of what happened to a task. No I/O.

Nobody is told of their own actions. A notification is dated by the event that caused
it, so that the same event always makes the same notifications (bar their ids).
"""

from __future__ import annotations

import uuid
from uuid import UUID

from contracts.notifications import Notification, NotificationKind
from contracts.tasks import TaskAssigned, TaskOwnerChanged, TaskStatus, TaskStatusChanged

__all__ = ("notifications_of_assignment", "notifications_of_owner_change", "notifications_of_status_change")


def notifications_of_assignment(event: TaskAssigned) -> list[Notification]:
    """The new assignee hears of it, unless they assigned themselves.

    An unassignment tells nobody: the task left them, there is nothing for them to do.
    """
    if event.assignee_id is None or event.assignee_id == event.assigned_by:
        return []
    return [
        _notification(
            event,
            user_id=event.assignee_id,
            kind=NotificationKind.TASK_ASSIGNED,
            task_id=event.task_id,
            task_title=event.title,
            actor_id=event.assigned_by,
        )
    ]


def notifications_of_status_change(event: TaskStatusChanged) -> list[Notification]:
    """The owner hears of a move someone else made; finishing the task is news of its own kind."""
    if event.changed_by == event.owner_id:
        return []
    kind = (
        NotificationKind.TASK_COMPLETED
        if event.status == TaskStatus.DONE
        else NotificationKind.TASK_STATUS_CHANGED
    )
    return [
        _notification(
            event,
            user_id=event.owner_id,
            kind=kind,
            task_id=event.task_id,
            task_title=event.title,
            actor_id=event.changed_by,
        )
    ]


def notifications_of_owner_change(event: TaskOwnerChanged) -> list[Notification]:
    """The new owner hears that a task is theirs now (a closed account's work, handed over)."""
    if event.owner_id == event.changed_by:
        return []
    return [
        _notification(
            event,
            user_id=event.owner_id,
            kind=NotificationKind.TASK_HANDED_OVER,
            task_id=event.task_id,
            task_title=event.title,
            actor_id=event.changed_by,
        )
    ]


def _notification(
    event: TaskAssigned | TaskStatusChanged | TaskOwnerChanged,
    *,
    user_id: UUID,
    kind: NotificationKind,
    task_id: UUID,
    task_title: str,
    actor_id: UUID | None,
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=kind,
        task_id=task_id,
        task_title=task_title,
        actor_id=actor_id,
        created_at=event.occurred_at,
        read_at=None,
        event_id=event.event_id,
    )
