"""Activity's event store fed through its inbox: once each, in order, per stream; rebuilt read models."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import select

from app.composition.container import Composition
from app.kernel.events import EventMessage
from app.kernel.events.store import EventStore
from app.kernel.events.tables import stored_events
from contracts import Principal
from contracts.activity import ActivityQuery, StatsQuery
from contracts.tasks import TaskStatus
from tests.modules.activity.conftest import World, consumer_of, deliver, message, projector_of


async def _streams(composition: Composition) -> dict[str, list[str]]:
    async with composition.module("activity").database.read() as connection:
        rows = await connection.execute(
            select(stored_events.c.stream, stored_events.c.event_type).order_by(stored_events.c.position)
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row.stream, []).append(row.event_type.split(".")[1])
        return found


async def test_each_event_is_appended_once_to_its_entitys_stream_however_often_it_comes(
    world: World, composed: Composition
) -> None:
    ada, bob = world.user("Ada"), world.user("Bob")
    created = world.created(ada)
    events = [
        world.registered(ada, "Ada"),
        created,
        world.assigned(created, to=bob),
        world.status(created, by=bob, to=TaskStatus.IN_PROGRESS),
    ]
    consumer = consumer_of(composed)
    await consumer.deliver_all([message(e) for e in events])
    for event in events:  # redelivered one at a time, as a broker would after a lost ack
        await consumer.deliver(message(event))
    await consumer.deliver_all([message(e) for e in events])  # and all together again
    assert await _streams(composed) == {
        f"user-{ada}": ["UserRegistered"],
        f"task-{created.task_id}": ["TaskCreated", "TaskAssigned", "TaskStatusChanged"],
    }
    async with composed.module("activity").database.read() as connection:
        versions = [e.version for e in await EventStore.read_stream(connection, f"task-{created.task_id}")]
    assert versions == [1, 2, 3]


async def test_personal_values_are_sealed_in_the_store_and_opened_for_the_reader(
    world: World, composed: Composition
) -> None:
    ada = world.user("Ada")
    created = world.created(ada, title="Ada's secret plan")
    await deliver(composed, world.registered(ada, "Ada Lovelace"), created)
    async with composed.module("activity").database.read() as connection:
        stored = " ".join((await connection.execute(select(stored_events.c.data))).scalars())
    assert "Ada Lovelace" not in stored
    assert "secret plan" not in stored
    page = (
        await composed.module("activity")
        .api()
        .task_activity(Principal(user_id=ada), created.task_id, ActivityQuery())
    )
    (entry,) = page.items
    assert entry.data["title"] == "Ada's secret plan"
    assert entry.data["labels"] == ["history"]


async def test_a_rebuild_of_every_projection_answers_exactly_as_the_live_ones_did(
    world: World, composed: Composition
) -> None:
    ada, bob = world.user("Ada"), world.user("Bob")
    world.identity.make_admin(ada)
    events = [world.registered(ada, "Ada"), world.registered(bob, "Bob")]
    for i in range(12):
        created = world.created(ada, title=f"task {i}")
        events += [created, world.assigned(created, to=bob)]
        if i % 3 == 0:
            events.append(world.status(created, by=bob, to=TaskStatus.DONE))
    await deliver(composed, *events)
    service = composed.module("activity").api()
    ada_, bob_ = Principal(user_id=ada), Principal(user_id=bob)

    async def everything() -> list[object]:
        return [
            await service.user_feed(ada_, ActivityQuery(limit=100)),
            await service.user_feed(bob_, ActivityQuery(limit=7)),
            await service.task_activity(ada_, created.task_id, ActivityQuery()),
            await service.user_stats(bob_, _weeks_of_the_test()),
            await service.audit(ada_, ActivityQuery()),
        ]

    before = await everything()
    projector = projector_of(composed)
    for name in projector.names:
        await projector.rebuild(name)
    assert await everything() == before
    assert all(s.lag == 0 for s in await projector.status())


def _weeks_of_the_test() -> StatsQuery:
    return StatsQuery(from_=datetime(2026, 3, 2, tzinfo=UTC), to=datetime(2026, 3, 30, tzinfo=UTC))


async def test_events_published_before_contract_2_1_are_recorded_with_the_fields_they_lack(
    world: World, composed: Composition
) -> None:
    """A TaskCreated of tasks 2.0 has no description, priority, labels; a TaskDeleted no deleted_by."""
    ada = world.user("Ada")
    created = world.created(ada, title="Old")
    old_created = {
        "type": "tasks.TaskCreated.v1",
        "event_id": str(created.event_id),
        "occurred_at": created.occurred_at.isoformat(),
        "task_id": str(created.task_id),
        "owner_id": str(ada),
        "assignee_id": None,
        "title": "Old",
    }
    deleted_id = uuid.uuid4()
    old_deleted = {
        "type": "tasks.TaskDeleted.v1",
        "event_id": str(deleted_id),
        "occurred_at": (created.occurred_at + timedelta(hours=1)).isoformat(),
        "task_id": str(created.task_id),
        "owner_id": str(ada),
        "assignee_id": None,
    }
    messages = [
        msgspec.structs.replace(message(created), payload=msgspec.json.encode(old_created)),
        EventMessage(
            event_id=str(deleted_id),
            event_type="tasks.TaskDeleted.v1",
            source="tasks",
            key=str(created.task_id),
            payload=msgspec.json.encode(old_deleted),
        ),
    ]
    await consumer_of(composed).deliver_all(messages)
    await projector_of(composed).catch_up()
    service = composed.module("activity").api()
    page = await service.task_activity(
        Principal(user_id=ada),
        created.task_id,
        ActivityQuery(as_of=created.occurred_at + timedelta(minutes=1)),
    )
    assert [(e.kind, e.actor_id) for e in page.items] == [("task.created", ada)]
    assert page.state is not None
    assert (page.state.description, page.state.priority, page.state.labels) == ("", "normal", [])
    feed = await service.user_feed(Principal(user_id=ada), ActivityQuery())
    assert [(e.kind, e.actor_id) for e in feed.items] == [("task.deleted", ada), ("task.created", ada)]
