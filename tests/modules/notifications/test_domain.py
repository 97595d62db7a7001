"""The rules are pure: the same event always makes the same notifications, whenever it is handled."""

from __future__ import annotations

import uuid

import msgspec

from contracts.notifications import Notification
from contracts.tasks import TaskStatus
from modules.notifications.domain import notifications_of_assignment, notifications_of_status_change
from tests.modules.notifications.conftest import assigned, status_changed


def _without_ids(found: list[Notification]) -> list[dict[str, object]]:
    return [{k: v for k, v in msgspec.structs.asdict(n).items() if k != "id"} for n in found]


def test_an_assignment_makes_the_same_notification_each_time_it_is_handled() -> None:
    event = assigned(assignee=uuid.uuid4(), by=uuid.uuid4())
    first, again = notifications_of_assignment(event), notifications_of_assignment(event)
    assert len(first) == 1
    assert _without_ids(first) == _without_ids(again)


def test_a_status_change_makes_the_same_notification_each_time_it_is_handled() -> None:
    event = status_changed(owner=uuid.uuid4(), by=uuid.uuid4(), status=TaskStatus.DONE)
    first, again = notifications_of_status_change(event), notifications_of_status_change(event)
    assert len(first) == 1
    assert _without_ids(first) == _without_ids(again)


def test_a_notification_is_dated_by_its_event() -> None:
    event = assigned(assignee=uuid.uuid4(), by=uuid.uuid4())
    (notification,) = notifications_of_assignment(event)
    assert notification.created_at == event.occurred_at
    assert notification.event_id == event.event_id
