"""The notifications module on its own: its real database, fed task events as the kernel feeds them.

Nothing here imports another module: events are built from the tasks contract, and tokens
are minted with the kernel's AccessTokens, exactly as identity would mint them.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

import modules.notifications
from app.composition.container import Composition, compose
from app.composition.web import create_app
from app.kernel.config import Settings
from contracts import IntegrationEvent, Principal
from contracts.tasks import TaskAssigned, TaskStatus, TaskStatusChanged
from modules.notifications.tables import notifications
from tests.conftest import run_async

Client = TestClient[Any]

# Events happen at distinct, increasing moments unless a test says when.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
_moments = itertools.count()


def moment() -> datetime:
    return _EPOCH + timedelta(seconds=next(_moments))


def compose_notifications_alone(settings: Settings) -> Composition:
    return compose(settings, catalog=(modules.notifications.module,))


async def deliver(composition: Composition, *events: IntegrationEvent) -> None:
    """Hand each event to the handler the manifest names, in a unit of work of the module's database.

    As the kernel does, less the inbox row it writes in the same transaction.
    """
    composed = composition.module("notifications")
    handlers = composed.container.handlers()
    for event in events:
        handler = composed.module.consumes[type(event)]
        async with composed.container.units().write() as unit:
            await handler(handlers, [event], unit)


async def rows_caused_by(composition: Composition, event_id: UUID) -> int:
    """How many notifications the event made, counted in the table itself."""
    async with composition.module("notifications").database.read() as connection:
        statement = select(func.count()).where(notifications.c.event_id == event_id)
        return int((await connection.execute(statement)).scalar_one())


def assigned(
    *,
    assignee: UUID | None,
    by: UUID | None,
    owner: UUID | None = None,
    title: str = "A task",
    task_id: UUID | None = None,
    at: datetime | None = None,
) -> TaskAssigned:
    return TaskAssigned(
        event_id=uuid.uuid4(),
        occurred_at=at or moment(),
        task_id=task_id or uuid.uuid4(),
        owner_id=owner or by or uuid.uuid4(),
        assignee_id=assignee,
        previous_assignee_id=None,
        assigned_by=by,
        title=title,
    )


def status_changed(
    *,
    owner: UUID,
    by: UUID,
    status: TaskStatus,
    previous: TaskStatus = TaskStatus.TODO,
    assignee: UUID | None = None,
    title: str = "A task",
    task_id: UUID | None = None,
    at: datetime | None = None,
) -> TaskStatusChanged:
    return TaskStatusChanged(
        event_id=uuid.uuid4(),
        occurred_at=at or moment(),
        task_id=task_id or uuid.uuid4(),
        owner_id=owner,
        assignee_id=assignee,
        changed_by=by,
        previous_status=previous,
        status=status,
        title=title,
    )


class Users:
    """Users as the API sees them: an id and a bearer header."""

    def __init__(self, composition: Composition) -> None:
        self._tokens = composition.access_tokens

    def add(self) -> tuple[UUID, dict[str, str]]:
        user_id = uuid.uuid4()
        token = self._tokens.issue(Principal(user_id=user_id)).token
        return user_id, {"Authorization": f"Bearer {token}"}


class Inbox:
    """The HTTP API, with events fed in on the app's own event loop."""

    def __init__(self, client: Client, composition: Composition) -> None:
        self.client = client
        self._composition = composition

    def deliver(self, *events: IntegrationEvent) -> None:
        self.client.blocking_portal.call(deliver, self._composition, *events)

    def notify(self, user_id: UUID, **fields: Any) -> TaskAssigned:
        """Deliver an event that notifies ``user_id`` once: someone assigned them a task."""
        event = assigned(assignee=user_id, by=uuid.uuid4(), **fields)
        self.deliver(event)
        return event

    def list(self, auth: dict[str, str], **params: Any) -> dict[str, Any]:
        response = self.client.get("/api/v1/notifications", params=params, headers=auth)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    def unread(self, auth: dict[str, str]) -> int:
        response = self.client.get("/api/v1/notifications/unread-count", headers=auth)
        assert response.status_code == 200, response.text
        unread: int = response.json()["unread"]
        return unread


@pytest.fixture
def notifications_composition(settings: Settings) -> Composition:
    composition = compose_notifications_alone(settings)

    async def migrate() -> None:
        await composition.upgrade()
        await composition.aclose()  # release connections made on this loop; the app makes its own

    run_async(migrate())
    return composition


@pytest.fixture
async def composed(settings: Settings) -> AsyncIterator[Composition]:
    """The module composed and migrated on the test's own event loop, for tests without HTTP."""
    composition = compose_notifications_alone(settings)
    await composition.upgrade()
    yield composition
    await composition.aclose()


@pytest.fixture
def users(notifications_composition: Composition) -> Users:
    return Users(notifications_composition)


@pytest.fixture
def inbox(notifications_composition: Composition) -> Iterator[Inbox]:
    with TestClient(app=create_app(notifications_composition)) as client:
        yield Inbox(client, notifications_composition)
