"""Tasks: what a task is, who may do what to it, and how its status may move. No I/O."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

import msgspec

from contracts import FieldError, InvalidInput
from contracts.tasks import (
    DESCRIPTION_MAX,
    LABEL_MAX,
    LABELS_MAX,
    TITLE_MAX,
    InvalidTransition,
    NotPermittedOnTask,
    Priority,
    Task,
    TaskAssigned,
    TaskChanges,
    TaskCreated,
    TaskDeleted,
    TaskDraft,
    TaskEdited,
    TaskFields,
    TaskOwnerChanged,
    TaskStatus,
    TaskStatusChanged,
)

__all__ = (
    "ALLOWED_TRANSITIONS",
    "OPEN_STATUSES",
    "PRIORITY_RANK",
    "TaskChanges",
    "TaskDraft",
    "apply_changes",
    "assigned_to",
    "can_see",
    "events_of_change",
    "events_of_creation",
    "events_of_deletion",
    "new_task",
    "owned_by",
    "owner_changed",
    "unassigned",
)

# Work moves forward, can be dropped, and finished or dropped work can be reopened.
ALLOWED_TRANSITIONS: Mapping[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.TODO: frozenset({TaskStatus.IN_PROGRESS, TaskStatus.DONE, TaskStatus.CANCELLED}),
    TaskStatus.IN_PROGRESS: frozenset({TaskStatus.TODO, TaskStatus.DONE, TaskStatus.CANCELLED}),
    TaskStatus.DONE: frozenset({TaskStatus.TODO, TaskStatus.IN_PROGRESS}),
    TaskStatus.CANCELLED: frozenset({TaskStatus.TODO}),
}
OPEN_STATUSES = frozenset({TaskStatus.TODO, TaskStatus.IN_PROGRESS})
PRIORITY_RANK: Mapping[Priority, int] = {
    Priority.LOW: 0,
    Priority.NORMAL: 1,
    Priority.HIGH: 2,
    Priority.URGENT: 3,
}


def can_see(task: Task, user_id: UUID) -> bool:
    return user_id in (task.owner_id, task.assignee_id)


def new_task(draft: TaskDraft, *, owner_id: UUID, now: datetime) -> Task:
    title, labels = _checked(title=draft.title, description=draft.description, labels=draft.labels)
    return Task(
        id=uuid.uuid4(),
        title=title,
        description=draft.description,
        status=TaskStatus.TODO,
        priority=draft.priority,
        due_at=draft.due_at,
        labels=labels,
        owner_id=owner_id,
        assignee_id=draft.assignee_id,
        created_at=now,
        updated_at=now,
        version=1,
    )


def apply_changes(task: Task, changes: TaskChanges, *, actor: UUID, now: datetime) -> Task:
    """The task after ``changes`` by ``actor``, or the rule the change breaks.

    The owner or the assignee may edit; only the owner may reassign.
    """
    updates = {
        name: value
        for name in changes.__struct_fields__
        if (value := getattr(changes, name)) is not msgspec.UNSET
    }
    if "assignee_id" in updates and updates["assignee_id"] != task.assignee_id and actor != task.owner_id:
        raise NotPermittedOnTask("only the owner may reassign a task")
    status = updates.get("status", task.status)
    if status != task.status and status not in ALLOWED_TRANSITIONS[task.status]:
        raise InvalidTransition(f"a task that is {task.status} cannot become {status}")
    title, labels = _checked(
        title=updates.get("title", task.title),
        description=updates.get("description", task.description),
        labels=updates.get("labels", task.labels),
    )
    updates.update(title=title, labels=labels)
    changed = {k: v for k, v in updates.items() if getattr(task, k) != v}
    if not changed:
        return task
    return msgspec.structs.replace(task, **changed, updated_at=now, version=task.version + 1)


def reopens(task: Task, changes: TaskChanges) -> bool:
    """Whether ``changes`` move a closed task (done, cancelled) back to open work.

    An open task's assignee is an active user: deactivation takes a user off open work,
    and a task reopened after its assignee left goes back to nobody.
    """
    return task.status not in OPEN_STATUSES and changes.status in OPEN_STATUSES


def owned_by(task: Task, owner_id: UUID, *, now: datetime) -> Task:
    """The task given to another owner: a closing account's successor, or back."""
    return msgspec.structs.replace(task, owner_id=owner_id, updated_at=now, version=task.version + 1)


def assigned_to(task: Task, assignee_id: UUID, *, now: datetime) -> Task:
    """The task given back to an assignee it was taken from (an undone hand-over)."""
    return msgspec.structs.replace(task, assignee_id=assignee_id, updated_at=now, version=task.version + 1)


def owner_changed(before: Task, after: Task) -> TaskOwnerChanged:
    return TaskOwnerChanged(
        event_id=uuid.uuid4(),
        occurred_at=after.updated_at,
        task_id=after.id,
        owner_id=after.owner_id,
        previous_owner_id=before.owner_id,
        assignee_id=after.assignee_id,
        changed_by=None,
        title=after.title,
    )


def unassigned(task: Task, *, now: datetime) -> Task:
    """The task with nobody assigned: what happens to a deactivated user's open work."""
    return msgspec.structs.replace(task, assignee_id=None, updated_at=now, version=task.version + 1)


# -- the events a change publishes ---------------------------------------------------


def events_of_creation(task: Task) -> list[TaskCreated | TaskAssigned]:
    created = TaskCreated(
        event_id=uuid.uuid4(),
        occurred_at=task.created_at,
        task_id=task.id,
        owner_id=task.owner_id,
        assignee_id=task.assignee_id,
        title=task.title,
        description=task.description,
        status=task.status,
        priority=task.priority,
        due_at=task.due_at,
        labels=task.labels,
    )
    if task.assignee_id is None:
        return [created]
    return [created, _assigned(None, task, by=task.owner_id)]


# The fields a TaskEdited tells of, old and new.
_EDITABLE = tuple(TaskFields.__struct_fields__)


def events_of_change(
    before: Task, after: Task, *, actor: UUID | None
) -> list[TaskEdited | TaskAssigned | TaskStatusChanged]:
    """What other modules hear of an update: edited fields, a new assignee, a new status.

    ``actor`` None: the system changed the task (it only ever unassigns).
    """
    events: list[TaskEdited | TaskAssigned | TaskStatusChanged] = []
    edited = [name for name in _EDITABLE if getattr(before, name) != getattr(after, name)]
    if edited and actor is not None:
        events.append(
            TaskEdited(
                event_id=uuid.uuid4(),
                occurred_at=after.updated_at,
                task_id=after.id,
                owner_id=after.owner_id,
                assignee_id=after.assignee_id,
                edited_by=actor,
                title=after.title,
                before=TaskFields(**{name: getattr(before, name) for name in edited}),
                after=TaskFields(**{name: getattr(after, name) for name in edited}),
            )
        )
    if after.assignee_id != before.assignee_id:
        events.append(_assigned(before.assignee_id, after, by=actor))
    if after.status != before.status and actor is not None:
        events.append(
            TaskStatusChanged(
                event_id=uuid.uuid4(),
                occurred_at=after.updated_at,
                task_id=after.id,
                owner_id=after.owner_id,
                assignee_id=after.assignee_id,
                changed_by=actor,
                previous_status=before.status,
                status=after.status,
                title=after.title,
            )
        )
    return events


def events_of_deletion(task: Task, *, by: UUID, now: datetime) -> list[TaskDeleted]:
    return [
        TaskDeleted(
            event_id=uuid.uuid4(),
            occurred_at=now,
            task_id=task.id,
            owner_id=task.owner_id,
            assignee_id=task.assignee_id,
            deleted_by=by,
        )
    ]


def _assigned(previous: UUID | None, task: Task, *, by: UUID | None) -> TaskAssigned:
    return TaskAssigned(
        event_id=uuid.uuid4(),
        occurred_at=task.updated_at,
        task_id=task.id,
        owner_id=task.owner_id,
        assignee_id=task.assignee_id,
        previous_assignee_id=previous,
        assigned_by=by,
        title=task.title,
    )


def _checked(*, title: str, description: str, labels: list[str]) -> tuple[str, list[str]]:
    """Normalised title and labels, or InvalidInput naming every field that breaks a rule."""
    errors: list[FieldError] = []
    title = title.strip()
    if not 1 <= len(title) <= TITLE_MAX:
        errors.append(FieldError(field="title", message=f"must be 1 to {TITLE_MAX} characters"))
    if len(description) > DESCRIPTION_MAX:
        errors.append(
            FieldError(field="description", message=f"must be at most {DESCRIPTION_MAX} characters")
        )
    cleaned = list(dict.fromkeys(label.strip() for label in labels))
    if len(cleaned) > LABELS_MAX:
        errors.append(FieldError(field="labels", message=f"at most {LABELS_MAX} labels"))
    if any(not 1 <= len(label) <= LABEL_MAX for label in cleaned):
        errors.append(FieldError(field="labels", message=f"each label must be 1 to {LABEL_MAX} characters"))
    if errors:
        raise InvalidInput(errors)
    return title, cleaned
