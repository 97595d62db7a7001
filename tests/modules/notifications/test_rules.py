"""Who is told of what: task events in, each user's notifications out."""

from __future__ import annotations

import uuid
from uuid import UUID

import pytest

from app.composition.container import Composition
from contracts import Principal
from contracts.notifications import Notification, NotificationKind, NotificationQuery, NotificationsApi
from contracts.tasks import TaskStatus
from tests.modules.notifications.conftest import assigned, deliver, rows_caused_by, status_changed


async def inbox_of(composition: Composition, user_id: UUID) -> list[Notification]:
    api: NotificationsApi = composition.module("notifications").api()
    page = await api.list_notifications(Principal(user_id=user_id), NotificationQuery(limit=100))
    return page.items


class TestAssignment:
    async def test_the_assignee_is_told_who_assigned_them_what(self, composed: Composition) -> None:
        owner, assignee = uuid.uuid4(), uuid.uuid4()
        event = assigned(assignee=assignee, by=owner, owner=owner, title="Write the plan")
        await deliver(composed, event)
        (notification,) = await inbox_of(composed, assignee)
        assert notification.user_id == assignee
        assert notification.kind == NotificationKind.TASK_ASSIGNED
        assert (notification.task_id, notification.task_title) == (event.task_id, "Write the plan")
        assert notification.actor_id == owner
        assert notification.created_at == event.occurred_at
        assert notification.read_at is None
        assert notification.event_id == event.event_id

    async def test_the_assigner_is_not_told_of_their_own_assignment(self, composed: Composition) -> None:
        owner = uuid.uuid4()
        await deliver(composed, assigned(assignee=uuid.uuid4(), by=owner, owner=owner))
        assert await inbox_of(composed, owner) == []

    async def test_assigning_oneself_notifies_nobody(self, composed: Composition) -> None:
        owner = uuid.uuid4()
        event = assigned(assignee=owner, by=owner, owner=owner)
        await deliver(composed, event)
        assert await inbox_of(composed, owner) == []
        assert await rows_caused_by(composed, event.event_id) == 0

    @pytest.mark.parametrize("by_the_system", [True, False])
    async def test_an_unassignment_notifies_nobody(self, composed: Composition, by_the_system: bool) -> None:
        owner = uuid.uuid4()
        event = assigned(assignee=None, by=None if by_the_system else owner, owner=owner)
        await deliver(composed, event)
        assert await rows_caused_by(composed, event.event_id) == 0


class TestStatusChange:
    @pytest.mark.parametrize("status", [TaskStatus.IN_PROGRESS, TaskStatus.CANCELLED, TaskStatus.TODO])
    async def test_a_change_by_the_assignee_tells_the_owner(
        self, composed: Composition, status: TaskStatus
    ) -> None:
        owner, assignee = uuid.uuid4(), uuid.uuid4()
        previous = TaskStatus.IN_PROGRESS if status == TaskStatus.TODO else TaskStatus.TODO
        event = status_changed(owner=owner, by=assignee, assignee=assignee, status=status, previous=previous)
        await deliver(composed, event)
        (notification,) = await inbox_of(composed, owner)
        assert notification.kind == NotificationKind.TASK_STATUS_CHANGED
        assert notification.actor_id == assignee
        assert (notification.task_id, notification.event_id) == (event.task_id, event.event_id)
        assert await inbox_of(composed, assignee) == []

    async def test_completion_by_someone_else_is_news_of_its_own_kind(self, composed: Composition) -> None:
        owner, assignee = uuid.uuid4(), uuid.uuid4()
        event = status_changed(owner=owner, by=assignee, assignee=assignee, status=TaskStatus.DONE)
        await deliver(composed, event)
        (notification,) = await inbox_of(composed, owner)
        assert notification.kind == NotificationKind.TASK_COMPLETED
        assert notification.actor_id == assignee

    @pytest.mark.parametrize("status", list(TaskStatus))
    async def test_the_owner_changing_their_own_task_notifies_nobody(
        self, composed: Composition, status: TaskStatus
    ) -> None:
        owner, assignee = uuid.uuid4(), uuid.uuid4()
        event = status_changed(owner=owner, by=owner, assignee=assignee, status=status)
        await deliver(composed, event)
        assert await rows_caused_by(composed, event.event_id) == 0


class TestDelivery:
    async def test_one_delivery_makes_one_notification(self, composed: Composition) -> None:
        events = [assigned(assignee=uuid.uuid4(), by=uuid.uuid4()) for _ in range(3)]
        await deliver(composed, *events)
        assert [await rows_caused_by(composed, e.event_id) for e in events] == [1, 1, 1]

    async def test_the_handlers_write_in_the_unit_of_work_the_kernel_opened(
        self, composed: Composition
    ) -> None:
        """A delivery whose transaction fails (its inbox row, say) leaves no notification behind."""
        notifications = composed.module("notifications")
        event = assigned(assignee=uuid.uuid4(), by=uuid.uuid4())
        with pytest.raises(RuntimeError, match="inbox write failed"):
            async with notifications.container.units().write() as unit:
                await notifications.container.handlers().on_task_assigned([event], unit)
                raise RuntimeError("inbox write failed")
        assert await rows_caused_by(composed, event.event_id) == 0

    async def test_a_redelivered_event_after_a_failure_makes_its_notification_once(
        self, composed: Composition
    ) -> None:
        notifications = composed.module("notifications")
        event = assigned(assignee=uuid.uuid4(), by=uuid.uuid4())
        with pytest.raises(RuntimeError):
            async with notifications.container.units().write() as unit:
                await notifications.container.handlers().on_task_assigned([event], unit)
                raise RuntimeError("crashed before commit")
        await deliver(composed, event)
        assert await rows_caused_by(composed, event.event_id) == 1


def test_every_consumed_event_names_a_method_of_the_handlers(composed: Composition) -> None:
    notifications = composed.module("notifications")
    handlers = notifications.container.handlers()
    assert notifications.module.consumes
    for event_type, method in notifications.module.consumes.items():
        assert callable(getattr(handlers, method.__name__)), event_type
