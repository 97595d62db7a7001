"""Task events through the kernel's own consumer: the manifest wires them, the inbox makes them once."""

from __future__ import annotations

import uuid

import msgspec

from app.container import Composition
from app.kernel.events import EventConsumer, EventMessage
from contracts import IntegrationEvent
from contracts.tasks import TaskStatus
from tests.modules.notifications.conftest import assigned, rows_caused_by, status_changed


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
    assert _consumer(composed).event_types == sorted(["tasks.TaskAssigned.v1", "tasks.TaskStatusChanged.v1"])


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
