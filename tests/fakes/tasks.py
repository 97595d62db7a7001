"""An in-memory TasksApi for the tests of modules that consume tasks.

Verified by the same conformance suite as the tasks module.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from contracts import FieldError, InvalidInput, Principal
from contracts.tasks import (
    Priority,
    Task,
    TaskNotFound,
    TaskPage,
    TaskQuery,
    TasksApi,
    TaskStatus,
)

__all__ = ("FakeTasks",)

_OPEN = (TaskStatus.TODO, TaskStatus.IN_PROGRESS)


class FakeTasks(TasksApi):
    def __init__(self) -> None:
        self._tasks: dict[UUID, Task] = {}

    def add_task(
        self,
        owner_id: UUID,
        *,
        title: str = "A task",
        assignee_id: UUID | None = None,
        status: TaskStatus = TaskStatus.TODO,
    ) -> UUID:
        now = datetime.now(UTC)
        task = Task(
            id=uuid.uuid4(),
            title=title,
            description="",
            status=status,
            priority=Priority.NORMAL,
            due_at=None,
            labels=[],
            owner_id=owner_id,
            assignee_id=assignee_id,
            created_at=now,
            updated_at=now,
            version=1,
        )
        self._tasks[task.id] = task
        return task.id

    def reassign(self, task_id: UUID, assignee_id: UUID | None) -> None:
        self._tasks[task_id] = msgspec.structs.replace(self._tasks[task_id], assignee_id=assignee_id)

    async def get_task(self, principal: Principal, task_id: UUID) -> Task:
        task = self._tasks.get(task_id)
        if task is None or principal.user_id not in (task.owner_id, task.assignee_id):
            raise TaskNotFound(f"no task {task_id}")
        return task

    async def list_tasks(self, principal: Principal, query: TaskQuery) -> TaskPage:
        visible = [
            t
            for t in self._tasks.values()
            if principal.user_id in (t.owner_id, t.assignee_id)
            and (not query.status or t.status in query.status)
        ]
        visible.sort(key=lambda t: (t.created_at, t.id), reverse=query.descending)
        try:
            start = int(query.cursor or 0)
        except ValueError:
            raise InvalidInput([FieldError(field="cursor", message="not a cursor this API issued")]) from None
        page = visible[start : start + query.limit]
        more = start + query.limit < len(visible)
        return TaskPage(items=page, next_cursor=str(start + query.limit) if more else None)
