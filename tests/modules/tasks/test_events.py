"""What the tasks module tells other modules: the events each change writes to its outbox.

The module runs alone with the identity fake; events are read back from its own outbox,
and identity's UserDeactivated is delivered through the kernel's own consumer.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar.testing import TestClient
from sqlalchemy import select

from app.composition.container import Composition
from app.kernel.events import EventMessage
from app.kernel.events.tables import outbox
from contracts.identity import UserDeactivated, UserProfileChanged
from tests.fakes.identity import FakeIdentity
from tests.modules.tasks.conftest import People, create_task

Client = TestClient[Any]


def outbox_events(client: Client, composition: Composition) -> list[dict[str, Any]]:
    """Every event in the tasks outbox, oldest first, as JSON with its ``type``."""

    async def read() -> list[dict[str, Any]]:
        async with composition.module("tasks").database.read() as connection:
            rows = await connection.execute(select(outbox.c.payload).order_by(outbox.c.id))
            return [json.loads(payload) for (payload,) in rows]

    return client.blocking_portal.call(read)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def deliver(client: Client, composition: Composition, event: UserDeactivated | UserProfileChanged) -> None:
    """Hand identity's event to the tasks module's consumer, as the bus would."""
    consumer = next(c for c in composition.events.consumers if c.module == "tasks")
    message = EventMessage(
        event_id=str(event.event_id),
        event_type=event.type_name(),
        source="identity",
        key=event.key,
        payload=msgspec.json.encode(event),
    )
    client.blocking_portal.call(consumer.deliver, message)


def deactivated(client: Client, composition: Composition, user_id: uuid.UUID) -> UserDeactivated:
    """Deliver a UserDeactivated for ``user_id``."""
    event = UserDeactivated(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), user_id=user_id, deactivated_by=user_id
    )
    deliver(client, composition, event)
    return event


def test_creating_an_assigned_task_announces_the_task_then_the_assignment(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    ada_id, ada = people.add("Ada")
    bob_id, _ = people.add("Bob")
    task = create_task(tasks_client, ada, assignee_id=str(bob_id))
    events = outbox_events(tasks_client, tasks_composition)
    assert types(events) == ["tasks.TaskCreated.v1", "tasks.TaskAssigned.v1"]
    created, assigned = events
    assert created["task_id"] == assigned["task_id"] == task["id"]
    assert assigned["assignee_id"] == str(bob_id)
    assert assigned["assigned_by"] == str(ada_id)
    assert assigned["previous_assignee_id"] is None


def test_an_unassigned_task_is_only_announced(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    _, ada = people.add("Ada")
    create_task(tasks_client, ada)
    assert types(outbox_events(tasks_client, tasks_composition)) == ["tasks.TaskCreated.v1"]


def test_a_retried_create_announces_nothing_new(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    _, ada = people.add("Ada")
    headers = {**ada, "Idempotency-Key": "once"}
    for _ in range(3):
        assert tasks_client.post("/api/v1/tasks", json={"title": "t"}, headers=headers).status_code == 201
    assert types(outbox_events(tasks_client, tasks_composition)) == ["tasks.TaskCreated.v1"]


def test_reassigning_and_moving_a_task_announce_each_change(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    ada_id, ada = people.add("Ada")
    bob_id, bob = people.add("Bob")
    carol_id, _ = people.add("Carol")
    task = create_task(tasks_client, ada, assignee_id=str(bob_id))
    url = f"/api/v1/tasks/{task['id']}"
    assert tasks_client.patch(url, json={"status": "done"}, headers=bob).status_code == 200
    assert tasks_client.patch(url, json={"assignee_id": str(carol_id)}, headers=ada).status_code == 200
    *_, done, reassigned = outbox_events(tasks_client, tasks_composition)
    assert done["type"] == "tasks.TaskStatusChanged.v1"
    assert (done["previous_status"], done["status"], done["changed_by"]) == ("todo", "done", str(bob_id))
    assert reassigned["type"] == "tasks.TaskAssigned.v1"
    assert reassigned["previous_assignee_id"] == str(bob_id)
    assert reassigned["assignee_id"] == str(carol_id)
    assert reassigned["assigned_by"] == str(ada_id)


def test_a_refused_or_empty_change_announces_nothing(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    _, ada = people.add("Ada")
    task = create_task(tasks_client, ada, title="same")
    url = f"/api/v1/tasks/{task['id']}"
    assert tasks_client.patch(url, json={"title": "same"}, headers=ada).status_code == 200
    stale = tasks_client.patch(url, json={"status": "done"}, headers={**ada, "If-Match": '"99"'})
    assert stale.status_code == 412
    assert types(outbox_events(tasks_client, tasks_composition)) == ["tasks.TaskCreated.v1"]


def test_deleting_a_task_announces_it(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    _, ada = people.add("Ada")
    task = create_task(tasks_client, ada)
    assert tasks_client.delete(f"/api/v1/tasks/{task['id']}", headers=ada).status_code == 204
    deleted = outbox_events(tasks_client, tasks_composition)[-1]
    assert (deleted["type"], deleted["task_id"]) == ("tasks.TaskDeleted.v1", task["id"])


def test_a_deactivated_user_is_taken_off_open_tasks_only(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    _, ada = people.add("Ada")
    bob_id, bob = people.add("Bob")
    open_task = create_task(tasks_client, ada, assignee_id=str(bob_id))
    done_task = create_task(tasks_client, ada, assignee_id=str(bob_id))
    done_url = f"/api/v1/tasks/{done_task['id']}"
    assert tasks_client.patch(done_url, json={"status": "done"}, headers=bob).status_code == 200

    deactivated(tasks_client, tasks_composition, bob_id)

    reread = tasks_client.get(f"/api/v1/tasks/{open_task['id']}", headers=ada).json()
    assert reread["assignee"] is None
    assert reread["version"] == open_task["version"] + 1
    assert tasks_client.get(done_url, headers=ada).json()["assignee"]["id"] == str(bob_id)
    released = outbox_events(tasks_client, tasks_composition)[-1]
    assert released["type"] == "tasks.TaskAssigned.v1"
    assert released["task_id"] == open_task["id"]
    assert (released["assignee_id"], released["previous_assignee_id"]) == (None, str(bob_id))
    assert released["assigned_by"] is None


def test_a_redelivered_deactivation_unassigns_once(
    tasks_client: Client, tasks_composition: Composition, people: People
) -> None:
    _, ada = people.add("Ada")
    bob_id, _ = people.add("Bob")
    create_task(tasks_client, ada, assignee_id=str(bob_id))
    event = deactivated(tasks_client, tasks_composition, bob_id)
    deliver(tasks_client, tasks_composition, event)  # the bus delivers it again
    assert types(outbox_events(tasks_client, tasks_composition)).count("tasks.TaskAssigned.v1") == 2


def test_a_renamed_user_shows_by_the_new_name_once_tasks_hears_of_it(
    tasks_client: Client, tasks_composition: Composition, people: People, identity: FakeIdentity
) -> None:
    ada_id, ada = people.add("Ada")
    task = create_task(tasks_client, ada)

    def owner_name() -> str:
        response = tasks_client.get(f"/api/v1/tasks/{task['id']}", headers=ada)
        name: str = response.json()["owner"]["display_name"]
        return name

    assert owner_name() == "Ada"
    identity.add_user("Ada Lovelace", user_id=ada_id)  # identity has the new name; tasks has a copy
    assert owner_name() == "Ada"  # the copy, a few seconds old at most (cache.profile_seconds)
    deliver(
        tasks_client,
        tasks_composition,
        UserProfileChanged(
            event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), user_id=ada_id, display_name="Ada Lovelace"
        ),
    )
    assert owner_name() == "Ada Lovelace"  # the event made tasks forget its copy
