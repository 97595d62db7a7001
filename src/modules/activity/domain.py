"""What activity makes of other modules' events: streams, entries, figures and past states.

Pure functions over an event's type and its data as the store keeps it (the integration
event as JSON-ready builtins: ids and moments as strings). Personal values in that data
may be sealed: every function here passes them through untouched or leaves them alone;
only the service opens them, for the reader who asks.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from contracts.activity import ERASED_USER, ActivityKind, TaskState, WeekStats
from contracts.identity import (
    AccountClosed,
    AdministratorGranted,
    UserDeactivated,
    UserProfileChanged,
    UserReactivated,
    UserRegistered,
)
from contracts.tasks import (
    Priority,
    TaskAssigned,
    TaskCreated,
    TaskDeleted,
    TaskEdited,
    TaskOwnerChanged,
    TaskStatus,
    TaskStatusChanged,
)

__all__ = (
    "ERASED_TEXT",
    "Entry",
    "PersonalData",
    "StatMark",
    "entry_of",
    "fold_task",
    "iso_week",
    "personal_data",
    "stat_marks_of",
    "stream_of",
    "week_stats",
    "weeks_between",
)

ERASED_TEXT = "(erased)"  # what an erased owner's title, description and labels read as

_KINDS: dict[str, ActivityKind] = {
    TaskCreated.type_name(): ActivityKind.TASK_CREATED,
    TaskEdited.type_name(): ActivityKind.TASK_EDITED,
    TaskAssigned.type_name(): ActivityKind.TASK_ASSIGNED,
    TaskStatusChanged.type_name(): ActivityKind.TASK_STATUS_CHANGED,
    TaskDeleted.type_name(): ActivityKind.TASK_DELETED,
    UserRegistered.type_name(): ActivityKind.USER_REGISTERED,
    UserProfileChanged.type_name(): ActivityKind.USER_PROFILE_CHANGED,
    UserDeactivated.type_name(): ActivityKind.USER_DEACTIVATED,
    UserReactivated.type_name(): ActivityKind.USER_REACTIVATED,
    AdministratorGranted.type_name(): ActivityKind.ADMINISTRATOR_GRANTED,
    TaskOwnerChanged.type_name(): ActivityKind.TASK_OWNER_CHANGED,
    AccountClosed.type_name(): ActivityKind.ACCOUNT_CLOSED,
}
# Who acted, by event type: the field naming them (the task's owner creates it).
_ACTOR: dict[ActivityKind, str] = {
    ActivityKind.TASK_CREATED: "owner_id",
    ActivityKind.TASK_EDITED: "edited_by",
    ActivityKind.TASK_ASSIGNED: "assigned_by",
    ActivityKind.TASK_STATUS_CHANGED: "changed_by",
    ActivityKind.TASK_DELETED: "deleted_by",
    ActivityKind.USER_REGISTERED: "user_id",
    ActivityKind.USER_PROFILE_CHANGED: "user_id",
    ActivityKind.USER_DEACTIVATED: "deactivated_by",
    ActivityKind.USER_REACTIVATED: "reactivated_by",
    ActivityKind.ADMINISTRATOR_GRANTED: "granted_by",
    ActivityKind.TASK_OWNER_CHANGED: "changed_by",
    ActivityKind.ACCOUNT_CLOSED: "closed_by",
}
# What an entry shows of its event, by kind.
_SHOWN: dict[ActivityKind, tuple[str, ...]] = {
    ActivityKind.TASK_CREATED: (
        "title",
        "description",
        "status",
        "priority",
        "due_at",
        "labels",
        "assignee_id",
    ),
    ActivityKind.TASK_EDITED: ("title", "before", "after"),
    ActivityKind.TASK_ASSIGNED: ("title", "previous_assignee_id", "assignee_id"),
    ActivityKind.TASK_STATUS_CHANGED: ("title", "previous_status", "status"),
    ActivityKind.TASK_DELETED: (),
    ActivityKind.USER_REGISTERED: ("display_name",),
    ActivityKind.USER_PROFILE_CHANGED: ("display_name",),
    ActivityKind.USER_DEACTIVATED: (),
    ActivityKind.USER_REACTIVATED: (),
    ActivityKind.ADMINISTRATOR_GRANTED: (),
    ActivityKind.TASK_OWNER_CHANGED: ("title", "previous_owner_id", "owner_id"),
    ActivityKind.ACCOUNT_CLOSED: (),
}
_ADMINISTRATIVE = frozenset(
    {
        ActivityKind.USER_DEACTIVATED,
        ActivityKind.USER_REACTIVATED,
        ActivityKind.ADMINISTRATOR_GRANTED,
        ActivityKind.ACCOUNT_CLOSED,
    }
)
# Done to oneself, these are no administrative act; done by another (an administrator), they are.
_SELF_SERVICE = frozenset({ActivityKind.USER_DEACTIVATED, ActivityKind.ACCOUNT_CLOSED})
_OPEN = frozenset({TaskStatus.TODO.value, TaskStatus.IN_PROGRESS.value})


# -- recording ---------------------------------------------------------------------------


def stream_of(event_type: str, data: Mapping[str, Any]) -> str:
    """The stream an event belongs to: its task's, or its user's."""
    kind = _KINDS[event_type]
    return f"task-{data['task_id']}" if kind.value.startswith("task.") else f"user-{data['user_id']}"


@dataclass(frozen=True, slots=True)
class PersonalData:
    """Fields of an event's data that are one person's: sealed under their key."""

    subject: UUID
    fields: tuple[str, ...]  # top-level fields, and the same names inside before/after
    erased_as: str


def personal_data(event_type: str, data: Mapping[str, Any]) -> PersonalData | None:
    """Whose personal data the event holds, and where: a task's texts are its owner's."""
    kind = _KINDS[event_type]
    if kind in (ActivityKind.USER_REGISTERED, ActivityKind.USER_PROFILE_CHANGED):
        return PersonalData(subject=UUID(data["user_id"]), fields=("display_name",), erased_as=ERASED_USER)
    if kind.value.startswith("task.") and kind is not ActivityKind.TASK_DELETED:
        return PersonalData(
            subject=UUID(data["owner_id"]), fields=("title", "description", "labels"), erased_as=ERASED_TEXT
        )
    return None


# -- entries -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """An event as a list of activity shows it."""

    kind: ActivityKind
    actor_id: UUID | None
    task_id: UUID | None
    user_id: UUID | None
    data: dict[str, Any]
    members: frozenset[UUID]  # whose feeds it belongs in
    administrative: bool


def entry_of(event_type: str, data: Mapping[str, Any]) -> Entry:
    kind = _KINDS[event_type]
    actor = _uuid(data.get(_ACTOR[kind]))
    if kind is ActivityKind.TASK_DELETED and actor is None:
        actor = _uuid(data.get("owner_id"))  # before contract 2.1: only the owner could delete
    task_id = _uuid(data.get("task_id"))
    user_id = None if task_id else _uuid(data.get("user_id"))
    involved = {
        actor,
        user_id,
        *(
            _uuid(data.get(f))
            for f in ("owner_id", "assignee_id", "previous_assignee_id", "previous_owner_id")
        ),
    }
    return Entry(
        kind=kind,
        actor_id=actor,
        task_id=task_id,
        user_id=user_id,
        data={name: data[name] for name in _SHOWN[kind] if name in data},
        members=frozenset(m for m in involved if m is not None),
        administrative=kind in _ADMINISTRATIVE and not (kind in _SELF_SERVICE and actor == user_id),
    )


# -- statistics ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatMark:
    user_id: UUID
    week: str
    kind: str  # created | completed | reopened
    hours_to_done: float | None = None


def stat_marks_of(
    event_type: str, data: Mapping[str, Any], occurred_at: datetime, *, born_at: datetime | None
) -> list[StatMark]:
    """What an event counts for in its actor's weekly figures (``born_at``: the task's creation)."""
    kind = _KINDS[event_type]
    week = iso_week(occurred_at)
    if kind is ActivityKind.TASK_CREATED:
        return [StatMark(user_id=UUID(data["owner_id"]), week=week, kind="created")]
    if kind is not ActivityKind.TASK_STATUS_CHANGED:
        return []
    actor, before, after = UUID(data["changed_by"]), data["previous_status"], data["status"]
    if after == TaskStatus.DONE.value:
        hours = (occurred_at - born_at).total_seconds() / 3600 if born_at else None
        return [StatMark(user_id=actor, week=week, kind="completed", hours_to_done=hours)]
    if before == TaskStatus.DONE.value and after in _OPEN:
        return [StatMark(user_id=actor, week=week, kind="reopened")]
    return []


def iso_week(moment: datetime) -> str:
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(start: datetime, end: datetime) -> list[str]:
    """Every ISO week from the one holding ``start`` to the one holding ``end``, oldest first."""
    monday = _monday(start)
    last = _monday(end)
    weeks = []
    while monday <= last:
        year, week, _ = monday.isocalendar()
        weeks.append(f"{year}-W{week:02d}")
        monday += timedelta(weeks=1)
    return weeks


def week_stats(weeks: Sequence[str], marks: Iterable[StatMark]) -> list[WeekStats]:
    """Each week's figures from its marks; weeks without any are there with zeros."""
    by_week: dict[str, list[StatMark]] = {week: [] for week in weeks}
    for mark in marks:
        if mark.week in by_week:
            by_week[mark.week].append(mark)
    stats = []
    for week, found in by_week.items():
        hours = [m.hours_to_done for m in found if m.kind == "completed" and m.hours_to_done is not None]
        stats.append(
            WeekStats(
                week=week,
                created=sum(m.kind == "created" for m in found),
                completed=sum(m.kind == "completed" for m in found),
                reopened=sum(m.kind == "reopened" for m in found),
                median_hours_to_done=round(statistics.median(hours), 3) if hours else None,
            )
        )
    return stats


def _monday(moment: datetime) -> date:
    day = moment.astimezone(UTC).date()
    return day - timedelta(days=day.weekday())


# -- time travel ---------------------------------------------------------------------------


def fold_task(task_id: UUID, history: Iterable[tuple[str, datetime, Mapping[str, Any]]]) -> TaskState | None:
    """The task as its history leaves it: (event type, occurred_at, opened data), in order.

    None if the history does not begin with its creation (nothing happened yet).
    """
    state: dict[str, Any] | None = None
    for event_type, occurred_at, data in history:
        kind = _KINDS[event_type]
        if kind is ActivityKind.TASK_CREATED:
            state = {
                "title": data["title"],
                "description": data.get("description", ""),
                "status": data.get("status", TaskStatus.TODO.value),
                "priority": data.get("priority", Priority.NORMAL.value),
                "due_at": data.get("due_at"),
                "labels": data.get("labels", []),
                "owner_id": data["owner_id"],
                "assignee_id": data.get("assignee_id"),
                "created_at": occurred_at,
                "deleted": False,
            }
        elif state is None:
            continue
        elif kind is ActivityKind.TASK_EDITED:
            state.update(data["after"])
        elif kind is ActivityKind.TASK_ASSIGNED:
            state["assignee_id"] = data["assignee_id"]
        elif kind is ActivityKind.TASK_STATUS_CHANGED:
            state["status"] = data["status"]
        elif kind is ActivityKind.TASK_OWNER_CHANGED:
            state["owner_id"] = data["owner_id"]
        elif kind is ActivityKind.TASK_DELETED:
            state["deleted"] = True
        if state is not None:
            state["updated_at"] = occurred_at
    if state is None:
        return None
    return TaskState(
        id=task_id,
        title=state["title"],
        description=state["description"],
        status=TaskStatus(state["status"]),
        priority=Priority(state["priority"]),
        due_at=datetime.fromisoformat(state["due_at"]) if state["due_at"] else None,
        labels=state["labels"] if isinstance(state["labels"], list) else [state["labels"]],  # erased: a text
        owner_id=UUID(state["owner_id"]),
        assignee_id=_uuid(state["assignee_id"]),
        created_at=state["created_at"],
        updated_at=state["updated_at"],
        deleted=state["deleted"],
    )


def _uuid(value: Any) -> UUID | None:
    return UUID(value) if value else None
