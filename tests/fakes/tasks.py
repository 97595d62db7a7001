"""An in-memory TasksApi for the tests of modules that consume tasks.

Verified by the same conformance suite as the tasks module.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from uuid import UUID

import msgspec

from contracts import FieldError, InvalidInput, Principal
from contracts.identity import IdentityApi, UserInactive, UserNotFound
from contracts.tasks import (
    CreatedTask,
    HandBack,
    HandOver,
    IdempotencyKeyReused,
    NotPermittedOnTask,
    Priority,
    SuccessorUnavailable,
    Task,
    TaskChanges,
    TaskDraft,
    TaskNotFound,
    TaskPage,
    TaskQuery,
    TasksApi,
    TaskStatus,
    VersionMismatch,
)

__all__ = ("FakeTasks",)

_OPEN = (TaskStatus.TODO, TaskStatus.IN_PROGRESS)


class FakeTasks(TasksApi):
    def __init__(self, identity: IdentityApi | None = None) -> None:
        self._tasks: dict[UUID, Task] = {}
        self._identity = identity  # who may take work over; None: anyone
        self._hand_overs: dict[str, tuple[HandOver, dict[UUID, int], UUID]] = {}
        self._handed_back: dict[str, HandBack] = {}
        self._keyed: dict[tuple[UUID, str], tuple[TaskDraft, UUID]] = {}
        self.calls: list[str] = []

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def edit(self, task_id: UUID, title: str) -> None:
        task = self._tasks[task_id]
        self._tasks[task_id] = msgspec.structs.replace(task, title=title, version=task.version + 1)

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
        task = self._tasks[task_id]
        self._tasks[task_id] = msgspec.structs.replace(
            task, assignee_id=assignee_id, version=task.version + 1
        )

    async def hand_over(self, user_id: UUID, successor_id: UUID, step_key: str) -> HandOver:
        self.calls.append("hand_over")
        if step_key in self._hand_overs:
            return self._hand_overs[step_key][0]
        if self._identity is not None:
            try:
                await self._identity.require_active_user(successor_id)
            except (UserInactive, UserNotFound):
                raise SuccessorUnavailable(f"user {successor_id} is not an active user") from None
        versions: dict[UUID, int] = {}
        moved, taken_off = [], []
        for task in list(self._tasks.values()):
            if task.status not in _OPEN:
                continue
            changed = task
            if task.owner_id == user_id:
                changed = msgspec.structs.replace(changed, owner_id=successor_id)
                moved.append(task.id)
            if task.assignee_id == user_id:
                changed = msgspec.structs.replace(changed, assignee_id=None)
                if task.owner_id != user_id:
                    taken_off.append(task.id)
            if changed is not task:
                self._tasks[task.id] = msgspec.structs.replace(changed, version=task.version + 1)
                versions[task.id] = task.version + 1
        done = HandOver(user_id=user_id, successor_id=successor_id, handed_over=moved, unassigned=taken_off)
        self._hand_overs[step_key] = (done, versions, user_id)
        return done

    async def hand_back(self, step_key: str) -> HandBack:
        self.calls.append("hand_back")
        if step_key in self._handed_back:
            return self._handed_back[step_key]
        if step_key not in self._hand_overs:
            return HandBack(restored=[], not_restored=[])
        done, versions, user_id = self._hand_overs[step_key]
        restored, not_restored = [], []
        for task_id in done.handed_over + done.unassigned:
            task = self._tasks.get(task_id)
            if task is None or task.version != versions[task_id]:
                not_restored.append(task_id)
                continue
            if task_id in done.handed_over:
                task = msgspec.structs.replace(task, owner_id=user_id)
            else:
                task = msgspec.structs.replace(task, assignee_id=user_id)
            self._tasks[task_id] = msgspec.structs.replace(task, version=task.version + 1)
            restored.append(task_id)
        self._handed_back[step_key] = HandBack(restored=restored, not_restored=not_restored)
        return self._handed_back[step_key]

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

    async def create_task(
        self, principal: Principal, draft: TaskDraft, *, idempotency_key: str | None = None
    ) -> CreatedTask:
        key = (principal.user_id, idempotency_key) if idempotency_key is not None else None
        if key is not None and key in self._keyed:
            earlier, task_id = self._keyed[key]
            if earlier != draft:
                raise IdempotencyKeyReused("that key was used for another task")
            if task_id not in self._tasks:
                raise TaskNotFound(f"the task this Idempotency-Key created ({task_id}) no longer exists")
            return CreatedTask(task=self._tasks[task_id], replayed=True)
        if draft.assignee_id is not None and self._identity is not None:
            await self._identity.require_active_user(draft.assignee_id)
        task_id = self.add_task(principal.user_id, title=draft.title, assignee_id=draft.assignee_id)
        task = msgspec.structs.replace(
            self._tasks[task_id],
            description=draft.description,
            priority=draft.priority,
            due_at=draft.due_at,
            labels=list(draft.labels),
        )
        self._tasks[task_id] = task
        if key is not None:
            self._keyed[key] = (draft, task_id)
        return CreatedTask(task=task, replayed=False)

    async def update_task(
        self,
        principal: Principal,
        task_id: UUID,
        changes: TaskChanges,
        *,
        expected_version: int | None = None,
    ) -> Task:
        task = await self.get_task(principal, task_id)
        if expected_version is not None and expected_version != task.version:
            raise VersionMismatch(f"you have version {expected_version}; the task is at {task.version}")
        given = {
            name: getattr(changes, name)
            for name in changes.__struct_fields__
            if getattr(changes, name) is not msgspec.UNSET
        }
        if "assignee_id" in given and principal.user_id != task.owner_id:
            raise NotPermittedOnTask("only the owner may reassign a task")
        if not given:
            return task
        updated = msgspec.structs.replace(
            task, **given, version=task.version + 1, updated_at=datetime.now(UTC)
        )
        self._tasks[task_id] = updated
        return updated

    async def delete_task(self, principal: Principal, task_id: UUID) -> None:
        task = await self.get_task(principal, task_id)
        if task.owner_id != principal.user_id:
            raise NotPermittedOnTask("only the owner may delete a task")
        del self._tasks[task_id]
