"""Task events through the kernel's own consumer: the manifest wires them, the inbox makes them once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec
from sqlalchemy import insert, select

from app.composition.container import Composition
from app.kernel.config import Settings
from app.kernel.events import EventConsumer, EventMessage
from app.kernel.events.tables import inbox
from contracts import IntegrationEvent
from contracts.tasks import TaskStatus
from tests.modules.notifications.conftest import (
    assigned,
    compose_notifications_alone,
    rows_caused_by,
    status_changed,
)

T = TypeVar("T")


def _consumer(composition: Composition) -> EventConsumer:
    return next(c for c in composition.events.consumers if c.module == "notifications")


def _message(event: IntegrationEvent) -> EventMessage:
    return EventMessage(
        event_id=str(event.event_id),
        event_type=type(event).type_name(),
        source="tasks",
        key=event.key,
        payload=msgspec.json.encode(event),
    )


def test_the_module_consumes_exactly_the_task_events_it_has_rules_for(composed: Composition) -> None:
    assert _consumer(composed).event_types == sorted(
        ["tasks.TaskAssigned.v1", "tasks.TaskStatusChanged.v1", "tasks.TaskOwnerChanged.v1"]
    )


async def test_an_event_delivered_twice_makes_its_notification_once(composed: Composition) -> None:
    event = assigned(assignee=uuid.uuid4(), by=uuid.uuid4())
    consumer = _consumer(composed)
    await consumer.deliver(_message(event))
    await consumer.deliver(_message(event))
    assert await rows_caused_by(composed, event.event_id) == 1


async def test_a_completion_reaches_the_owner_once_however_often_it_comes(composed: Composition) -> None:
    owner, assignee = uuid.uuid4(), uuid.uuid4()
    event = status_changed(owner=owner, by=assignee, assignee=assignee, status=TaskStatus.DONE)
    for _ in range(3):
        await _consumer(composed).deliver(_message(event))
    assert await rows_caused_by(composed, event.event_id) == 1


async def test_a_consume_only_module_prunes_its_own_inbox(settings: Settings) -> None:
    """Notifications publishes nothing, so no relay runs for it; its inbox is still kept short."""
    events = msgspec.structs.replace(settings.events, retention_hours=1.0, prune_interval_seconds=0.05)
    composition = compose_notifications_alone(msgspec.structs.replace(settings, events=events))
    await composition.upgrade()
    old, recent = uuid.uuid4(), uuid.uuid4()
    database = composition.module("notifications").database
    async with database.transaction() as connection:
        for event_id, age in ((old, timedelta(hours=2)), (recent, timedelta(minutes=10))):
            await connection.execute(
                insert(inbox).values(
                    event_id=event_id, event_type="t", source="tasks", handled_at=datetime.now(UTC) - age
                )
            )
    assert not composition.events.relays
    await composition.events.start()
    try:
        await wait_for(lambda: _inbox_ids(composition), equals=[recent], within=5.0)
    finally:
        await composition.aclose()


async def _inbox_ids(composition: Composition) -> list[uuid.UUID]:
    async with composition.module("notifications").database.read() as connection:
        return list((await connection.execute(select(inbox.c.event_id))).scalars())


async def wait_for(probe: Callable[[], Awaitable[T]], *, equals: T, within: float) -> None:
    """Until ``probe()`` answers ``equals``; fail with its last answer after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while (answer := await probe()) != equals:
        assert asyncio.get_running_loop().time() < deadline, f"still {answer!r} after {within}s"
        await asyncio.sleep(0.02)
