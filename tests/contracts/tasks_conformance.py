"""What every implementation of TasksApi must do."""

from __future__ import annotations

import uuid
from typing import Protocol
from uuid import UUID

import pytest

from contracts import Principal
from contracts.tasks import HandBack, SuccessorUnavailable, TaskNotFound, TaskQuery, TasksApi, TaskStatus


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
