"""TasksApi's conformance suite, one suite for four targets: local, strict, remote, fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import cast
from uuid import UUID

import pytest

from app.composition.container import Composition
from app.kernel.config import Settings
from app.kernel.rpc import strict
from contracts import Principal
from contracts.tasks import TASKS, TasksApi, TaskStatus
from modules.tasks.domain import TaskChanges, TaskDraft
from modules.tasks.service import TasksService
from tests.contracts.remote import AsTheEdge, remote_client, serve_group, split_settings
from tests.contracts.tasks_conformance import TasksApiConformance
from tests.fakes.identity import FakeIdentity
from tests.fakes.tasks import FakeTasks
from tests.modules.tasks.conftest import compose_tasks_alone
from tests.servers import free_port


class LocalTasks:
    def __init__(self, composition: Composition, identity: FakeIdentity, *, strict_mode: bool) -> None:
        self.service: TasksService = composition.module("tasks").api()
        self.api: TasksApi = strict(TASKS, self.service) if strict_mode else self.service
        self._identity = identity

    async def given_task(
        self,
        owner: UUID,
        *,
        title: str = "A task",
        assignee: UUID | None = None,
        status: TaskStatus | None = None,
    ) -> UUID:
        if assignee is not None:
            self._identity.add_user("Assignee", user_id=assignee)
        principal = Principal(user_id=owner)
        created = await self.service.create_task(principal, TaskDraft(title=title, assignee_id=assignee))
        if status is not None:
            await self.service.update_task(principal, created.task.id, TaskChanges(status=status))
        return created.task.id

    async def given_user(self, *, active: bool = True) -> UUID:
        return self._identity.add_user("Someone", active=active)

    async def edit(self, owner: UUID, task_id: UUID) -> None:
        await self.service.update_task(Principal(user_id=owner), task_id, TaskChanges(title="Edited"))


@pytest.fixture(scope="module")
def tasks_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str, FakeIdentity]]:
    """The tasks group on loopback, with identity played by a fake this test process shares."""
    identity = FakeIdentity()
    port = free_port()
    settings = split_settings(tmp_path_factory.mktemp("tasks-server"), tasks=port, identity=free_port())
    for base in serve_group(settings, "tasks", port, identity=identity):
        yield settings, base, identity


class FakeTarget:
    def __init__(self) -> None:
        self.identity = FakeIdentity()
        self.fake = FakeTasks(identity=self.identity)
        self.api: TasksApi = self.fake

    async def given_user(self, *, active: bool = True) -> UUID:
        return self.identity.add_user("Someone", active=active)

    async def edit(self, owner: UUID, task_id: UUID) -> None:
        self.fake.edit(task_id, "Edited")

    async def given_task(
        self,
        owner: UUID,
        *,
        title: str = "A task",
        assignee: UUID | None = None,
        status: TaskStatus | None = None,
    ) -> UUID:
        return self.fake.add_task(owner, title=title, assignee_id=assignee, status=status or TaskStatus.TODO)


@pytest.fixture(params=["local", "strict", "remote", "fake"])
async def target(request: pytest.FixtureRequest, migrated: Settings) -> AsyncIterator[object]:
    if request.param == "fake":
        yield FakeTarget()
        return
    if request.param == "remote":
        settings, base, identity = request.getfixturevalue("tasks_server")
        seeding = compose_tasks_alone(settings, identity)
        async with remote_client(TASKS, base, "tasks") as api:
            local = LocalTasks(seeding, identity, strict_mode=False)
            local.api = cast(TasksApi, AsTheEdge(TASKS, api))
            yield local
        await seeding.aclose()
        return
    identity = FakeIdentity()
    composition = compose_tasks_alone(migrated, identity)
    await composition.upgrade()
    yield LocalTasks(composition, identity, strict_mode=request.param == "strict")
    await composition.aclose()


class TestTasksApi(TasksApiConformance):
    pass


def test_every_tasks_read_is_marked_idempotent() -> None:
    from contracts import is_idempotent

    for name in ("get_task", "list_tasks", "hand_over", "hand_back"):
        assert is_idempotent(getattr(TASKS.api, name)), name
