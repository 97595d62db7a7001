"""The service keeps the NotificationsApi contract, with values that would survive the network."""

from __future__ import annotations

import uuid

import pytest

from app.composition.container import Composition
from app.kernel.rpc import strict
from contracts import InvalidInput, Principal, is_idempotent
from contracts.notifications import (
    NOTIFICATIONS,
    NotificationKind,
    NotificationQuery,
    NotificationsApi,
    UnreadCount,
)
from tests.modules.notifications.conftest import assigned, deliver


def _api(composition: Composition) -> NotificationsApi:
    service: NotificationsApi = composition.module("notifications").api()
    return service


def test_the_service_is_a_notifications_api(composed: Composition) -> None:
    assert isinstance(_api(composed), NotificationsApi)


def test_every_read_is_marked_idempotent() -> None:
    for name in ("list_notifications", "unread_count"):
        assert is_idempotent(getattr(NOTIFICATIONS.api, name)), name


async def test_pages_and_counts_cross_a_strict_boundary(composed: Composition) -> None:
    user = uuid.uuid4()
    events = [assigned(assignee=user, by=uuid.uuid4()) for _ in range(3)]
    await deliver(composed, *events)
    api = strict(NOTIFICATIONS, _api(composed))
    principal = Principal(user_id=user)
    first = await api.list_notifications(principal, NotificationQuery(limit=2))
    rest = await api.list_notifications(principal, NotificationQuery(limit=2, cursor=first.next_cursor))
    assert [n.event_id for n in first.items + rest.items] == [e.event_id for e in reversed(events)]
    assert {n.kind for n in first.items} == {NotificationKind.TASK_ASSIGNED}
    assert rest.next_cursor is None
    assert await api.unread_count(principal) == UnreadCount(unread=3)


async def test_a_page_size_out_of_range_is_invalid_input(composed: Composition) -> None:
    with pytest.raises(InvalidInput) as raised:
        await _api(composed).list_notifications(Principal(user_id=uuid.uuid4()), NotificationQuery(limit=0))
    assert [e.field for e in raised.value.errors] == ["limit"]


async def test_deleting_an_inbox_takes_the_users_notifications_only_and_is_safe_to_repeat(
    composed: Composition,
) -> None:
    """Contract 1.1: the account-closure saga's step, across a strict boundary."""
    leaving, staying = uuid.uuid4(), uuid.uuid4()
    await deliver(composed, *(assigned(assignee=who, by=uuid.uuid4()) for who in (leaving, leaving, staying)))
    api = strict(NOTIFICATIONS, _api(composed))

    first = await api.delete_inbox(leaving, "saga-1:delete_inbox")
    again = await api.delete_inbox(leaving, "saga-1:delete_inbox")

    assert (first.deleted, again.deleted) == (2, 0)
    assert await api.unread_count(Principal(user_id=leaving)) == UnreadCount(unread=0)
    assert await api.unread_count(Principal(user_id=staying)) == UnreadCount(unread=1)
    assert is_idempotent(NOTIFICATIONS.api.delete_inbox)
