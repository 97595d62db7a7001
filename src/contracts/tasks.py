"""The tasks contract: tasks as other modules may read them, and the events tasks publish."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import (
    PAGE_LIMIT_DEFAULT,
    AwareDateTime,
    Contract,
    ContractError,
    IntegrationEvent,
    NotPermitted,
    PageLimit,
    Principal,
    idempotent,
    in_utc,
)

__all__ = (
    "DESCRIPTION_MAX",
    "LABELS_MAX",
    "LABEL_MAX",
    "TASKS",
    "TITLE_MAX",
    "SuccessorUnavailable",
    "Description",
    "HandBack",
    "HandOver",
    "Label",
    "Labels",
    "TaskSort",
    "Title",
    "IdempotencyKeyReused",
    "InvalidTransition",
    "NotPermittedOnTask",
    "VersionMismatch",
    "Priority",
    "Task",
    "TaskAssigned",
    "CreatedTask",
    "TaskChanges",
    "TaskCreated",
    "TaskDraft",
    "TaskDeleted",
    "TaskEdited",
    "TaskFields",
    "TaskNotFound",
    "TaskOwnerChanged",
    "TaskPage",
    "TaskQuery",
    "TaskStatus",
    "TaskStatusChanged",
    "TasksApi",
)


class TaskStatus(enum.StrEnum):
    TODO = "todo"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class TaskSort(enum.StrEnum):
    """What a listing of tasks is ordered by (then by id)."""

    CREATED_AT = "created_at"
    DUE_AT = "due_at"
    PRIORITY = "priority"


# A task's fields, as every decoder, the OpenAPI document and the tables see them.
TITLE_MAX = 200
DESCRIPTION_MAX = 10_000
LABELS_MAX = 20
LABEL_MAX = 50
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=TITLE_MAX)]
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=LABEL_MAX)]
Labels = Annotated[list[Label], msgspec.Meta(max_length=LABELS_MAX)]


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Task(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: UUID
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    due_at: AwareDateTime | None
    labels: list[str]
    owner_id: UUID
    assignee_id: UUID | None
    created_at: datetime
    updated_at: datetime
    version: int


class TaskQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which of a user's tasks to list, in what order, from where."""

    status: list[TaskStatus] | None = None
    assignee_id: UUID | None = None
    label: str | None = None
    title_contains: str | None = None
    due_before: AwareDateTime | None = None
    sort: TaskSort = TaskSort.CREATED_AT
    descending: bool = True
    limit: PageLimit = PAGE_LIMIT_DEFAULT
    cursor: str | None = None


class TaskPage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    items: list[Task]
    next_cursor: str | None


class TaskNotFound(ContractError):
    """No such task, or one the principal may not see: the two look the same."""

    code = "tasks.task_not_found"
    status = 404
    title = "No such task"


class InvalidTransition(ContractError):
    code = "tasks.invalid_transition"
    status = 409
    title = "The task cannot move to that status"


class NotPermittedOnTask(NotPermitted):
    code = "tasks.not_permitted"
    title = "Only the task's owner may do that"


class VersionMismatch(ContractError):
    code = "tasks.version_mismatch"
    status = 412
    title = "The task has changed since you read it"


class IdempotencyKeyReused(ContractError):
    code = "tasks.idempotency_key_reused"
    status = 422
    title = "That Idempotency-Key was used for a different request"


class HandOver(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What handing a user's work over moved (contract 2.2): tasks given to the successor,
    and tasks the user was taken off."""

    user_id: UUID
    successor_id: UUID
    handed_over: list[UUID]
    unassigned: list[UUID]


class HandBack(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What undoing a hand-over restored, and what it could not because it changed since."""

    restored: list[UUID]
    not_restored: list[UUID]


class SuccessorUnavailable(ContractError):
    """The user named to take work over does not exist or is not active (contract 2.2)."""

    code = "tasks.successor_unavailable"
    status = 409
    title = "The successor cannot take work over"


class TaskDraft(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a user asks for when creating a task (in the contract since 2.3)."""

    title: Title
    description: Description = ""
    priority: Priority = Priority.NORMAL
    due_at: AwareDateTime | None = None
    labels: Labels = msgspec.field(default_factory=list)
    assignee_id: UUID | None = None

    def __post_init__(self) -> None:
        if self.due_at is not None:
            in_utc(self.due_at, field="due_at")  # msgspec answers its ValueError as invalid input


class TaskChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A partial update (in the contract since 2.3): fields left UNSET are not touched; ``None``
    clears ``due_at`` or ``assignee_id``."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType = msgspec.UNSET
    status: TaskStatus | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    due_at: AwareDateTime | msgspec.UnsetType | None = msgspec.UNSET
    labels: Labels | msgspec.UnsetType = msgspec.UNSET
    assignee_id: UUID | msgspec.UnsetType | None = msgspec.UNSET

    def __post_init__(self) -> None:
        if isinstance(self.due_at, datetime):
            in_utc(self.due_at, field="due_at")


class CreatedTask(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new task (contract 2.3); ``replayed``: the answer to an earlier call with the same key."""

    task: Task
    replayed: bool


@runtime_checkable
class TasksApi(Protocol):
    @idempotent
    async def get_task(self, principal: Principal, task_id: UUID) -> Task:
        """A task the principal owns or is assigned; raises TaskNotFound otherwise."""
        ...

    @idempotent
    async def list_tasks(self, principal: Principal, query: TaskQuery) -> TaskPage:
        """The principal's tasks (owned or assigned), filtered, sorted, one page at a time."""
        ...

    async def create_task(
        self, principal: Principal, draft: TaskDraft, *, idempotency_key: str | None = None
    ) -> CreatedTask:
        """A new task owned by the principal (contract 2.3). With ``idempotency_key``, a repeat
        of the same draft answers the first call's task as it is now (TaskNotFound if it was
        deleted since); another draft under it raises IdempotencyKeyReused. The assignee, if
        any, must be an active user.
        """
        ...

    async def update_task(
        self,
        principal: Principal,
        task_id: UUID,
        changes: TaskChanges,
        *,
        expected_version: int | None = None,
    ) -> Task:
        """The task after ``changes`` (contract 2.3): its owner or assignee may edit, only its
        owner reassign. ``expected_version`` other than the task's raises VersionMismatch.
        """
        ...

    async def delete_task(self, principal: Principal, task_id: UUID) -> None:
        """Delete a task (contract 2.3): its owner only (NotPermittedOnTask otherwise)."""
        ...

    @idempotent
    async def hand_over(self, user_id: UUID, successor_id: UUID, step_key: str) -> HandOver:
        """Give every open task ``user_id`` owns to ``successor_id`` and take them off every
        task they are assigned (contract 2.2); recorded under ``step_key``, which a repeat
        answers from. Raises SuccessorUnavailable unless the successor is an active user.
        """
        ...

    @idempotent
    async def hand_back(self, step_key: str) -> HandBack:
        """Undo the hand-over recorded under ``step_key``, as far as nobody changed its tasks
        since (contract 2.2). Nothing recorded: nothing to undo."""
        ...


# -- events ----------------------------------------------------------------------------


class TaskCreated(IntegrationEvent, frozen=True, kw_only=True, tag="tasks.TaskCreated.v1"):
    """A task came to be, created by its owner, with every field it was created with.

    Contract 2.1 added the fields after ``title``; events published before have none of
    them and decode with the defaults, which are what a task was created with then.
    """

    task_id: UUID
    owner_id: UUID
    assignee_id: UUID | None
    title: str
    description: str = ""
    status: TaskStatus = TaskStatus.TODO
    priority: Priority = Priority.NORMAL
    due_at: datetime | None = None
    labels: list[str] = msgspec.field(default_factory=list)

    key_field = "task_id"


class TaskAssigned(IntegrationEvent, frozen=True, kw_only=True, tag="tasks.TaskAssigned.v1"):
    """The assignee changed; ``assignee_id`` None means the task was unassigned.

    ``assigned_by`` is None when the system unassigned the task (its assignee was deactivated).
    """

    key_field = "task_id"

    task_id: UUID
    owner_id: UUID
    assignee_id: UUID | None
    previous_assignee_id: UUID | None
    assigned_by: UUID | None
    title: str


class TaskStatusChanged(IntegrationEvent, frozen=True, kw_only=True, tag="tasks.TaskStatusChanged.v1"):
    key_field = "task_id"

    task_id: UUID
    owner_id: UUID
    assignee_id: UUID | None
    changed_by: UUID
    previous_status: TaskStatus
    status: TaskStatus
    title: str


class TaskDeleted(IntegrationEvent, frozen=True, kw_only=True, tag="tasks.TaskDeleted.v1"):
    """The task is gone. ``deleted_by`` (contract 2.1; None in earlier events): who deleted it."""

    key_field = "task_id"

    task_id: UUID
    owner_id: UUID
    assignee_id: UUID | None
    deleted_by: UUID | None = None


class TaskFields(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Some of a task's editable fields: those left out (``UNSET``) are not part of the change."""

    title: str | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    priority: Priority | msgspec.UnsetType = msgspec.UNSET
    due_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    labels: list[str] | msgspec.UnsetType = msgspec.UNSET


class TaskEdited(IntegrationEvent, frozen=True, kw_only=True, tag="tasks.TaskEdited.v1"):
    """Someone changed a task's title, description, priority, due date or labels (contract 2.1).

    ``before`` and ``after`` hold the same fields: exactly those that changed, old and new.
    The assignee and the status have events of their own.
    """

    key_field = "task_id"

    task_id: UUID
    owner_id: UUID
    assignee_id: UUID | None
    edited_by: UUID
    title: str  # the title now, changed or not
    before: TaskFields
    after: TaskFields


class TaskOwnerChanged(IntegrationEvent, frozen=True, kw_only=True, tag="tasks.TaskOwnerChanged.v1"):
    """The task has a new owner (contract 2.2): its owner's account closed, and it went to their
    successor — or, the closure undone, back. ``changed_by`` None: the system moved it."""

    key_field = "task_id"

    task_id: UUID
    owner_id: UUID
    previous_owner_id: UUID
    assignee_id: UUID | None
    changed_by: UUID | None
    title: str


TASKS: Contract[TasksApi] = Contract(
    name="tasks",
    version="2.3",  # 2.1: TaskCreated's fields, TaskDeleted.deleted_by, TaskEdited; 2.2: hand-overs;
    # 2.3: create_task, update_task, delete_task (the web UI calls them)
    api=TasksApi,
    errors=(
        TaskNotFound,
        InvalidTransition,
        NotPermittedOnTask,
        VersionMismatch,
        IdempotencyKeyReused,
        SuccessorUnavailable,
    ),
    events=(TaskCreated, TaskAssigned, TaskStatusChanged, TaskEdited, TaskDeleted, TaskOwnerChanged),
)
