"""The activity contract: the history of every task and of what each user did.

Activity keeps history as its primary data (an event store) and answers from read models
built from it. Other modules may read it, and ask it to forget a person.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import (
    PAGE_LIMIT_DEFAULT,
    AwareDateTime,
    Contract,
    ContractError,
    NotPermitted,
    PageLimit,
    Principal,
    idempotent,
)
from contracts.tasks import Priority, TaskStatus

__all__ = (
    "ACTIVITY",
    "ActivityApi",
    "ActivityEntry",
    "ActivityKind",
    "ActivityPage",
    "ActivityQuery",
    "Erasure",
    "NotPermittedOnActivity",
    "StatsQuery",
    "TaskActivity",
    "TaskActivityNotFound",
    "TaskState",
    "UserStats",
    "WeekStats",
)

# What an erased person's sealed values read as, where a read model shows them.
ERASED_USER = "deleted user"


class ActivityKind(enum.StrEnum):
    TASK_CREATED = "task.created"
    TASK_EDITED = "task.edited"
    TASK_ASSIGNED = "task.assigned"
    TASK_STATUS_CHANGED = "task.status_changed"
    TASK_DELETED = "task.deleted"
    TASK_OWNER_CHANGED = "task.owner_changed"  # contract 1.1
    USER_REGISTERED = "user.registered"
    USER_PROFILE_CHANGED = "user.profile_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    ADMINISTRATOR_GRANTED = "user.administrator_granted"
    ACCOUNT_CLOSED = "user.account_closed"  # contract 1.1


class ActivityEntry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One thing that happened. ``id`` is the event's own id: a rebuild gives the same entries.

    ``task_id`` names the task it happened to, ``user_id`` the user (for account events);
    ``actor_id`` who did it (None: the system or the command line). ``data`` holds what
    the kind tells of (e.g. ``{"from": "todo", "to": "done"}``); an erased person's values
    in it read as "deleted user".
    """

    id: UUID
    kind: ActivityKind
    actor_id: UUID | None
    occurred_at: datetime
    task_id: UUID | None = None
    user_id: UUID | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)


class ActivityQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limit: PageLimit = PAGE_LIMIT_DEFAULT
    cursor: str | None = None
    as_of: AwareDateTime | None = None  # a task's timeline only: as it was then, with its state


class ActivityPage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    items: list[ActivityEntry]
    next_cursor: str | None


class TaskState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every field of a task as it was at a moment, folded from its history."""

    id: UUID
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    due_at: datetime | None
    labels: list[str]
    owner_id: UUID
    assignee_id: UUID | None
    created_at: datetime
    updated_at: datetime
    deleted: bool


class TaskActivity(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A task's timeline, newest first; with ``as_of``, up to then, and ``state`` at that moment."""

    items: list[ActivityEntry]
    next_cursor: str | None
    state: TaskState | None = None  # only with as_of; None too if the task did not exist yet


class StatsQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """ISO weeks ``from_`` to ``to`` (dates in them; default: the last 12 weeks to now)."""

    from_: AwareDateTime | None = msgspec.field(default=None, name="from")
    to: AwareDateTime | None = None
    user_id: UUID | None = None  # an administrator may ask for anyone's


class WeekStats(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    week: str  # ISO 8601 week, "2026-W49"
    created: int  # tasks the user created
    completed: int  # tasks the user moved to done
    reopened: int  # tasks the user moved from done back to open work
    median_hours_to_done: float | None  # of the tasks they completed that week, creation to done


class UserStats(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_id: UUID
    weeks: list[WeekStats]  # every week of the range, oldest first, empty weeks included


class Erasure(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    user_id: UUID
    erased: bool  # False: there was nothing (left) to erase


class TaskActivityNotFound(ContractError):
    """No such task, or one the principal may not see: the two look the same."""

    code = "activity.task_not_found"
    status = 404
    title = "No such task"


class NotPermittedOnActivity(NotPermitted):
    code = "activity.not_permitted"
    title = "Only an administrator may see that"


@runtime_checkable
class ActivityApi(Protocol):
    @idempotent
    async def task_activity(self, principal: Principal, task_id: UUID, query: ActivityQuery) -> TaskActivity:
        """A task's timeline, for its owner and assignee now; TaskActivityNotFound for anyone else."""
        ...

    @idempotent
    async def user_feed(self, principal: Principal, query: ActivityQuery) -> ActivityPage:
        """What happened to the principal's tasks and what the principal did, newest first."""
        ...

    @idempotent
    async def user_stats(self, principal: Principal, query: StatsQuery) -> UserStats:
        """The principal's figures per ISO week (an administrator may name any user)."""
        ...

    @idempotent
    async def audit(self, principal: Principal, query: ActivityQuery) -> ActivityPage:
        """Every administrative action, newest first (administrators only)."""
        ...

    @idempotent
    async def erase_user(self, user_id: UUID, step_key: str | None = None) -> Erasure:
        """Forget the user's personal data in every event and read model. Safe to repeat.

        ``step_key`` (contract 1.1): the saga step asking; the erasure is idempotent anyway, and
        what reaches activity about the user after it stays erased.
        """
        ...


ACTIVITY: Contract[ActivityApi] = Contract(
    name="activity",
    version="1.1",  # 1.1: erase_user's step_key, the task.owner_changed and user.account_closed kinds
    api=ActivityApi,
    errors=(TaskActivityNotFound, NotPermittedOnActivity),
)
