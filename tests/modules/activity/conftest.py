"""The activity module on its own: its real database, fed events as the kernel feeds them.

Nothing here imports another module: events are built from the tasks and identity
contracts, the contracts activity requires are the conformance-tested fakes, and tokens
are minted with the kernel's AccessTokens, as identity would mint them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
import pytest
from litestar.testing import TestClient

import modules.activity
from app.composition.container import Composition, compose
from app.composition.web import create_app
from app.kernel.config import Settings
from app.kernel.events import EventConsumer, EventMessage
from app.kernel.events.projections import Projector
from contracts import IntegrationEvent, Principal
from contracts.identity import UserRegistered
from contracts.tasks import TaskAssigned, TaskCreated, TaskStatus, TaskStatusChanged
from tests.conftest import run_async
from tests.fakes.identity import FakeIdentity
from tests.fakes.tasks import FakeTasks

Client = TestClient[Any]

_EPOCH = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday: ISO week 2026-W10
_moments = itertools.count()


def moment() -> datetime:
    """Distinct, increasing moments, a minute apart, unless a test says when."""
    return _EPOCH + timedelta(minutes=next(_moments))


class World:
    """The fakes activity asks, and the events it hears, kept consistent with each other."""

    def __init__(self) -> None:
        self.tasks = FakeTasks()
        self.identity = FakeIdentity()

    def compose(self, settings: Settings) -> Composition:
        return compose(
            settings,
            catalog=(modules.activity.module,),
            external={"tasks": self.tasks, "identity": self.identity},
        )

    def user(self, name: str = "Someone") -> UUID:
        return self.identity.add_user(name)

    def registered(self, user_id: UUID, name: str, *, at: datetime | None = None) -> UserRegistered:
        when = at or moment()
        return UserRegistered(
            event_id=uuid.uuid4(), occurred_at=when, user_id=user_id, display_name=name, registered_at=when
        )

    def created(self, owner: UUID, *, title: str = "A task", at: datetime | None = None) -> TaskCreated:
        task_id = self.tasks.add_task(owner, title=title)
        return TaskCreated(
            event_id=uuid.uuid4(),
            occurred_at=at or moment(),
            task_id=task_id,
            owner_id=owner,
            assignee_id=None,
            title=title,
            description="what it is about",
            labels=["history"],
        )

    def assigned(
        self,
        created: TaskCreated,
        *,
        to: UUID | None,
        previous: UUID | None = None,
        at: datetime | None = None,
    ) -> TaskAssigned:
        self.tasks.reassign(created.task_id, to)
        return TaskAssigned(
            event_id=uuid.uuid4(),
            occurred_at=at or moment(),
            task_id=created.task_id,
            owner_id=created.owner_id,
            assignee_id=to,
            previous_assignee_id=previous,
            assigned_by=created.owner_id,
            title=created.title,
        )

    def status(
        self,
        created: TaskCreated,
        *,
        by: UUID,
        to: TaskStatus,
        previous: TaskStatus = TaskStatus.TODO,
        at: datetime | None = None,
    ) -> TaskStatusChanged:
        return TaskStatusChanged(
            event_id=uuid.uuid4(),
            occurred_at=at or moment(),
            task_id=created.task_id,
            owner_id=created.owner_id,
            assignee_id=None,
            changed_by=by,
            previous_status=previous,
            status=to,
            title=created.title,
        )


def consumer_of(composition: Composition) -> EventConsumer:
    return next(c for c in composition.events.consumers if c.module == "activity")


def projector_of(composition: Composition) -> Projector:
    (projector,) = composition.projectors
    return projector


def message(event: IntegrationEvent) -> EventMessage:
    return EventMessage(
        event_id=str(event.event_id),
        event_type=type(event).type_name(),
        source="tasks" if type(event).type_name().startswith("tasks.") else "identity",
        key=event.key,
        payload=msgspec.json.encode(event),
    )


async def deliver(composition: Composition, *events: IntegrationEvent) -> None:
    """Through the kernel's consumer (inbox and all), then every projection caught up."""
    await consumer_of(composition).deliver_all([message(e) for e in events])
    await projector_of(composition).catch_up()


def bearer(composition: Composition, user_id: UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {composition.access_tokens.issue(Principal(user_id=user_id)).token}"}


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_settings(request: pytest.FixtureRequest) -> Settings:
    name = "settings" if request.param == "sqlite" else "postgres_settings"
    settings: Settings = request.getfixturevalue(name)
    return settings


@pytest.fixture
async def composed(world: World, any_settings: Settings) -> AsyncIterator[Composition]:
    """The module composed and migrated on the test's own loop, on SQLite and on PostgreSQL."""
    composition = world.compose(any_settings)
    await composition.upgrade()
    yield composition
    await composition.aclose()


@pytest.fixture
def app_composition(world: World, settings: Settings) -> Composition:
    composition = world.compose(settings)

    async def migrate() -> None:
        await composition.upgrade()
        await composition.aclose()

    run_async(migrate())
    return composition


class Api:
    """The HTTP API, with events fed in on the app's own event loop."""

    def __init__(self, client: Client, composition: Composition) -> None:
        self.client = client
        self.composition = composition

    def deliver(self, *events: IntegrationEvent) -> None:
        self.client.blocking_portal.call(deliver, self.composition, *events)

    def auth(self, user_id: UUID) -> dict[str, str]:
        return bearer(self.composition, user_id)

    def get(self, path: str, reader: UUID, *, status: int = 200, **params: Any) -> Any:
        """GET ``path`` as ``reader``, expecting ``status``; the JSON answered."""
        response = self.client.get(path, params=params, headers=self.auth(reader))
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture
def api(app_composition: Composition) -> Iterator[Api]:
    with TestClient(app=create_app(app_composition)) as client:
        yield Api(client, app_composition)
