"""The tasks service: implements TasksApi and the module's own create/update/delete."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from uuid import UUID

import msgspec
from sqlalchemy.exc import IntegrityError

from app.kernel.clock import Clock, utcnow
from contracts import PAGE_LIMIT_MAX, FieldError, InvalidInput, Principal
from contracts.identity import IdentityApi, UserInactive, UserNotFound
from contracts.tasks import (
    CreatedTask,
    HandBack,
    HandOver,
    IdempotencyKeyReused,
    NotPermittedOnTask,
    SuccessorUnavailable,
    Task,
    TaskNotFound,
    TaskPage,
    TaskQuery,
    TasksApi,
    VersionMismatch,
)
from modules.tasks.domain import (
    TaskChanges,
    TaskDraft,
    apply_changes,
    assigned_to,
    can_see,
    events_of_change,
    events_of_creation,
    events_of_deletion,
    new_task,
    owned_by,
    owner_changed,
    reopens,
    unassigned,
)
from modules.tasks.repository import HandOverRecord, TasksUnit

if TYPE_CHECKING:
    from app.kernel.unit_of_work import UnitsOfWork

__all__ = ("TasksService",)


class TasksService(TasksApi):
    def __init__(
        self,
        *,
        units: UnitsOfWork[TasksUnit],
        identity: IdentityApi,
        clock: Clock = utcnow,
    ) -> None:
        self._units = units
        self._identity = identity
        self._clock = clock

    # -- TasksApi ----------------------------------------------------------------------

    async def get_task(self, principal: Principal, task_id: UUID) -> Task:
        async with self._units.read() as unit:
            task = await unit.tasks.get(task_id)
        if task is None or not can_see(task, principal.user_id):
            raise TaskNotFound(f"no task {task_id}")
        return task

    async def list_tasks(self, principal: Principal, query: TaskQuery) -> TaskPage:
        if not 1 <= query.limit <= PAGE_LIMIT_MAX:  # a decoder checks it; a caller in this process may not
            raise InvalidInput([FieldError(field="limit", message=f"must be 1 to {PAGE_LIMIT_MAX}")])
        async with self._units.read() as unit:
            items, next_cursor = await unit.tasks.page_for(principal.user_id, query)
        return TaskPage(items=items, next_cursor=next_cursor)

    # -- the module's own operations ---------------------------------------------------

    async def create_task(
        self, principal: Principal, draft: TaskDraft, *, idempotency_key: str | None = None
    ) -> CreatedTask:
        fingerprint = hashlib.sha256(msgspec.json.encode(draft)).hexdigest()
        if idempotency_key is not None and (
            earlier := await self._replay(principal, idempotency_key, fingerprint)
        ):
            return earlier
        task = new_task(draft, owner_id=principal.user_id, now=self._clock())
        if task.assignee_id is not None:
            await self._require_assignable(task.assignee_id)
        try:
            async with self._units.write() as unit:
                await unit.tasks.add(task)
                unit.publish(*events_of_creation(task))
                if idempotency_key is not None:
                    await unit.tasks.remember_idempotency_key(
                        owner_id=principal.user_id,
                        key=idempotency_key,
                        fingerprint=fingerprint,
                        task=task,
                        at=task.created_at,
                    )
        except IntegrityError:
            # A concurrent request with the same key won the race; answer as it did.
            if idempotency_key is not None and (
                earlier := await self._replay(principal, idempotency_key, fingerprint)
            ):
                return earlier
            raise
        return CreatedTask(task=task, replayed=False)

    async def update_task(
        self,
        principal: Principal,
        task_id: UUID,
        changes: TaskChanges,
        *,
        expected_version: int | None = None,
    ) -> Task:
        current = await self.get_task(principal, task_id)
        if expected_version is not None and expected_version != current.version:
            raise VersionMismatch(f"you have version {expected_version}; the task is at {current.version}")
        reopened = reopens(current, changes)
        named = changes.assignee_id not in (msgspec.UNSET, None)
        if (
            reopened
            and not named
            and current.assignee_id is not None
            and not await self._assignable(current.assignee_id)
        ):
            changes = msgspec.structs.replace(changes, assignee_id=None)  # the assignee has left
        updated = apply_changes(current, changes, actor=principal.user_id, now=self._clock())
        if updated is current:
            return current
        if updated.assignee_id is not None and (
            updated.assignee_id != current.assignee_id or (reopened and named)
        ):
            await self._require_assignable(updated.assignee_id)
        async with self._units.write() as unit:
            if not await unit.tasks.replace(updated, expected_version=current.version):
                raise VersionMismatch("the task changed while it was being updated; read it again")
            unit.publish(*events_of_change(current, updated, actor=principal.user_id))
        return updated

    async def delete_task(self, principal: Principal, task_id: UUID) -> None:
        task = await self.get_task(principal, task_id)
        if task.owner_id != principal.user_id:
            raise NotPermittedOnTask("only the owner may delete a task")
        async with self._units.write() as unit:
            await unit.tasks.remove(task_id)
            unit.publish(*events_of_deletion(task, by=principal.user_id, now=self._clock()))

    async def hand_over(self, user_id: UUID, successor_id: UUID, step_key: str) -> HandOver:
        """See TasksApi.hand_over: the whole move is one transaction, recorded with it."""
        async with self._units.read() as unit:
            if (done := await unit.tasks.hand_over_record(step_key)) is not None:
                return _hand_over(done)
        if not await self._assignable(successor_id):
            raise SuccessorUnavailable(f"user {successor_id} is not an active user")
        now = self._clock()
        async with self._units.write() as unit:
            if (done := await unit.tasks.hand_over_record(step_key)) is not None:
                return _hand_over(done)  # a concurrent repeat got there first
            moved: list[tuple[UUID, int]] = []
            for task in await unit.tasks.open_owned_by(user_id):
                after = owned_by(task, successor_id, now=now)
                if task.assignee_id == user_id:
                    after = unassigned(after, now=now)
                await self._replace(unit, task, after)
                unit.publish(owner_changed(task, after), *events_of_change(task, after, actor=None))
                moved.append((after.id, after.version))
            taken_off: list[tuple[UUID, int]] = []
            for task in await unit.tasks.open_assigned_to(user_id):
                after = unassigned(task, now=now)
                await self._replace(unit, task, after)
                unit.publish(*events_of_change(task, after, actor=None))
                taken_off.append((after.id, after.version))
            record = HandOverRecord(
                step_key=step_key,
                user_id=user_id,
                successor_id=successor_id,
                moved=moved,
                unassigned=taken_off,
            )
            await unit.tasks.record_hand_over(record, at=now)
        return _hand_over(record)

    async def hand_back(self, step_key: str) -> HandBack:
        """See TasksApi.hand_back: a task changed since its move (its version moved on) stays."""
        now = self._clock()
        async with self._units.write() as unit:
            record = await unit.tasks.hand_over_record(step_key)
            if record is None:
                return HandBack(restored=[], not_restored=[])
            if record.handed_back is not None:
                return record.handed_back
            versions = dict(record.moved + record.unassigned)
            current = {task.id: task for task in await unit.tasks.many(list(versions))}
            restored: list[UUID] = []
            not_restored: list[UUID] = []
            for task_id, version in record.moved:
                task = current.get(task_id)
                if task is None or task.version != version:
                    not_restored.append(task_id)
                    continue
                after = owned_by(task, record.user_id, now=now)
                await self._replace(unit, task, after)
                unit.publish(owner_changed(task, after))
                restored.append(task_id)
            for task_id, version in record.unassigned:
                task = current.get(task_id)
                if task is None or task.version != version or task.assignee_id is not None:
                    not_restored.append(task_id)
                    continue
                after = assigned_to(task, record.user_id, now=now)
                await self._replace(unit, task, after)
                unit.publish(*events_of_change(task, after, actor=None))
                restored.append(task_id)
            result = HandBack(restored=restored, not_restored=not_restored)
            await unit.tasks.record_hand_back(step_key, result)
        return result

    @staticmethod
    async def _replace(unit: TasksUnit, before: Task, after: Task) -> None:
        if not await unit.tasks.replace(after, expected_version=before.version):
            raise VersionMismatch(f"task {before.id} changed meanwhile; try again")

    async def unassign_user(self, user_id: UUID, *, unit: TasksUnit) -> int:
        """Take a deactivated user off every open task, in ``unit``; how many tasks that was."""
        now = self._clock()
        released = 0
        for task in await unit.tasks.open_assigned_to(user_id):
            after = unassigned(task, now=now)
            if not await unit.tasks.replace(after, expected_version=task.version):
                raise VersionMismatch(f"task {task.id} changed while unassigning; try again")
            unit.publish(*events_of_change(task, after, actor=None))
            released += 1
        return released

    async def _replay(self, principal: Principal, key: str, fingerprint: str) -> CreatedTask | None:
        """The task an earlier create with ``key`` made, as it is now: a retry learns what became
        of it. Deleted (or no longer the caller's) since: TaskNotFound, never a task that is gone."""
        async with self._units.read() as unit:
            record = await unit.tasks.idempotency_record(principal.user_id, key)
            if record is None:
                return None
            if record.fingerprint != fingerprint:
                raise IdempotencyKeyReused
            task = await unit.tasks.get(record.task.id)
        if task is None or not can_see(task, principal.user_id):
            raise TaskNotFound(f"the task this Idempotency-Key created ({record.task.id}) no longer exists")
        return CreatedTask(task=task, replayed=True)

    async def _assignable(self, user_id: UUID) -> bool:
        try:
            await self._identity.require_active_user(user_id)
        except (UserNotFound, UserInactive):
            return False
        return True

    async def _require_assignable(self, user_id: UUID) -> None:
        """Ask identity, through its contract, whether ``user_id`` can take work."""
        try:
            await self._identity.require_active_user(user_id)
        except UserNotFound:
            raise InvalidInput([FieldError(field="assignee_id", message="no such user")]) from None
        except UserInactive:
            raise InvalidInput([FieldError(field="assignee_id", message="the user is deactivated")]) from None


def _hand_over(record: HandOverRecord) -> HandOver:
    return HandOver(
        user_id=record.user_id,
        successor_id=record.successor_id,
        handed_over=[task_id for task_id, _ in record.moved],
        unassigned=[task_id for task_id, _ in record.unassigned],
    )
