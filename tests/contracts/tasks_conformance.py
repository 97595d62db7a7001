"""What every implementation of TasksApi must do."""

from __future__ import annotations

import uuid
from typing import Protocol
from uuid import UUID

import pytest

from contracts import Principal
from contracts.tasks import (
    HandBack,
    IdempotencyKeyReused,
    NotPermittedOnTask,
    SuccessorUnavailable,
    TaskChanges,
    TaskDraft,
    TaskNotFound,
    TaskQuery,
    TasksApi,
    TaskStatus,
    VersionMismatch,
)


class TasksTarget(Protocol):
    api: TasksApi

    async def given_task(
        self,
        owner: UUID,
        *,
        title: str = "A task",
        assignee: UUID | None = None,
        status: TaskStatus | None = None,
    ) -> UUID: ...

    async def given_user(self, *, active: bool = True) -> UUID: ...

    async def edit(self, owner: UUID, task_id: UUID) -> None: ...


def _as(user_id: UUID) -> Principal:
    return Principal(user_id=user_id)


class TasksApiConformance:
    async def test_create_task_makes_a_task_the_principal_owns(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        created = await target.api.create_task(_as(owner), TaskDraft(title="Write", labels=["docs"]))
        task = await target.api.get_task(_as(owner), created.task.id)
        assert (task.title, task.labels, task.owner_id, created.replayed) == ("Write", ["docs"], owner, False)

    async def test_create_task_with_a_key_twice_answers_the_first_task(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        first = await target.api.create_task(_as(owner), TaskDraft(title="Once"), idempotency_key="k1")
        again = await target.api.create_task(_as(owner), TaskDraft(title="Once"), idempotency_key="k1")
        assert (again.task.id, again.replayed) == (first.task.id, True)
        with pytest.raises(IdempotencyKeyReused):
            await target.api.create_task(_as(owner), TaskDraft(title="Other"), idempotency_key="k1")

    async def test_a_key_whose_task_was_deleted_since_answers_not_found(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        first = await target.api.create_task(_as(owner), TaskDraft(title="Gone"), idempotency_key="k2")
        await target.api.delete_task(_as(owner), first.task.id)
        with pytest.raises(TaskNotFound):
            await target.api.create_task(_as(owner), TaskDraft(title="Gone"), idempotency_key="k2")

    async def test_update_task_changes_what_it_names(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        task_id = await target.given_task(owner, title="Draft")
        before = await target.api.get_task(_as(owner), task_id)
        after = await target.api.update_task(
            _as(owner), task_id, TaskChanges(title="Final"), expected_version=before.version
        )
        assert (after.title, after.description, after.version) == (
            "Final",
            before.description,
            before.version + 1,
        )

    async def test_update_task_of_a_stale_version_is_refused(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        task_id = await target.given_task(owner)
        stale = (await target.api.get_task(_as(owner), task_id)).version
        await target.edit(owner, task_id)
        with pytest.raises(VersionMismatch):
            await target.api.update_task(
                _as(owner), task_id, TaskChanges(title="Lost"), expected_version=stale
            )
        assert (await target.api.get_task(_as(owner), task_id)).title != "Lost"

    async def test_only_the_owner_deletes_a_task(self, target: TasksTarget) -> None:
        owner, assignee = uuid.uuid4(), uuid.uuid4()
        task_id = await target.given_task(owner, assignee=assignee)
        with pytest.raises(NotPermittedOnTask):
            await target.api.delete_task(_as(assignee), task_id)
        await target.api.delete_task(_as(owner), task_id)
        with pytest.raises(TaskNotFound):
            await target.api.get_task(_as(owner), task_id)

    async def test_get_task_returns_a_task_to_its_owner(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        task_id = await target.given_task(owner, title="Plan")
        task = await target.api.get_task(_as(owner), task_id)
        assert (task.id, task.title, task.owner_id, task.status) == (task_id, "Plan", owner, TaskStatus.TODO)

    async def test_get_task_returns_a_task_to_its_assignee(self, target: TasksTarget) -> None:
        owner, assignee = uuid.uuid4(), uuid.uuid4()
        task_id = await target.given_task(owner, assignee=assignee)
        assert (await target.api.get_task(_as(assignee), task_id)).assignee_id == assignee

    async def test_a_task_hidden_from_the_principal_is_not_found(self, target: TasksTarget) -> None:
        task_id = await target.given_task(uuid.uuid4())
        with pytest.raises(TaskNotFound) as raised:
            await target.api.get_task(_as(uuid.uuid4()), task_id)
        assert raised.value.code == "tasks.task_not_found"

    async def test_an_unknown_task_is_not_found(self, target: TasksTarget) -> None:
        with pytest.raises(TaskNotFound):
            await target.api.get_task(_as(uuid.uuid4()), uuid.uuid4())

    async def test_list_tasks_pages_through_the_principals_tasks(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        made = {await target.given_task(owner, title=f"t{i}") for i in range(5)}
        await target.given_task(uuid.uuid4())
        seen: list[UUID] = []
        cursor = None
        while True:
            page = await target.api.list_tasks(_as(owner), TaskQuery(limit=2, cursor=cursor))
            assert len(page.items) <= 2
            seen.extend(t.id for t in page.items)
            if (cursor := page.next_cursor) is None:
                break
        assert sorted(seen) == sorted(made)

    async def test_list_tasks_filters_by_status(self, target: TasksTarget) -> None:
        owner = uuid.uuid4()
        done = await target.given_task(owner, status=TaskStatus.DONE)
        await target.given_task(owner)
        page = await target.api.list_tasks(_as(owner), TaskQuery(status=[TaskStatus.DONE]))
        assert [t.id for t in page.items] == [done]

    # -- hand-overs (contract 2.2): a closing account's work, idempotent by step key -----

    async def test_hand_over_gives_open_tasks_to_the_successor_and_takes_the_user_off_the_rest(
        self, target: TasksTarget
    ) -> None:
        ada, other = uuid.uuid4(), uuid.uuid4()
        successor = await target.given_user()
        owned = await target.given_task(ada, title="Mine")
        finished = await target.given_task(ada, status=TaskStatus.DONE)
        assigned = await target.given_task(other, assignee=ada)

        handed = await target.api.hand_over(ada, successor, "saga-1:hand_over")

        assert (handed.handed_over, handed.unassigned) == ([owned], [assigned])
        assert (await target.api.get_task(_as(successor), owned)).owner_id == successor
        assert (await target.api.get_task(_as(other), assigned)).assignee_id is None
        assert (await target.api.get_task(_as(ada), finished)).owner_id == ada  # done work stays
        assert await target.api.hand_over(ada, successor, "saga-1:hand_over") == handed  # a repeat

    async def test_nothing_is_handed_to_an_inactive_successor(self, target: TasksTarget) -> None:
        ada = uuid.uuid4()
        successor = await target.given_user(active=False)
        owned = await target.given_task(ada)
        with pytest.raises(SuccessorUnavailable) as raised:
            await target.api.hand_over(ada, successor, "saga-2:hand_over")
        assert raised.value.code == "tasks.successor_unavailable"
        assert (await target.api.get_task(_as(ada), owned)).owner_id == ada

    async def test_hand_back_restores_what_nobody_changed_since(self, target: TasksTarget) -> None:
        ada = uuid.uuid4()
        successor = await target.given_user()
        kept, changed = (
            await target.given_task(ada, title="Kept"),
            await target.given_task(ada, title="Changed"),
        )
        await target.api.hand_over(ada, successor, "saga-3:hand_over")
        await target.edit(successor, changed)  # the successor worked on it meanwhile

        back = await target.api.hand_back("saga-3:hand_over")

        assert back == HandBack(restored=[kept], not_restored=[changed])
        assert (await target.api.get_task(_as(ada), kept)).owner_id == ada
        assert (await target.api.get_task(_as(successor), changed)).owner_id == successor
        assert await target.api.hand_back("saga-3:hand_over") == back  # a repeat
        assert await target.api.hand_back("saga-9:hand_over") == HandBack(restored=[], not_restored=[])
