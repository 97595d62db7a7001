"""The inbox API: listing, reading, counting, with notifications made from delivered events."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from contracts.tasks import TaskStatus
from tests.modules.notifications.conftest import Inbox, Users, assigned, moment, status_changed

ROUTES = [
    ("GET", "/api/v1/notifications"),
    ("GET", "/api/v1/notifications/unread-count"),
    ("POST", "/api/v1/notifications/read-all"),
    ("POST", f"/api/v1/notifications/{uuid.uuid4()}/read"),
]


def _all_pages(inbox: Inbox, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = inbox.list(auth, **params, **({"cursor": cursor} if cursor else {}))
        items.extend(page["items"])
        if (cursor := page["next_cursor"]) is None:
            return items
    raise AssertionError("pagination did not end")


class TestListing:
    def test_an_assignment_appears_in_the_assignees_inbox_only(self, inbox: Inbox, users: Users) -> None:
        owner, owner_auth = users.add()
        assignee, assignee_auth = users.add()
        event = assigned(assignee=assignee, by=owner, owner=owner, title="Write the plan")
        inbox.deliver(event)
        (item,) = inbox.list(assignee_auth)["items"]
        assert item["kind"] == "task_assigned"
        assert item["user_id"] == str(assignee)
        assert item["actor_id"] == str(owner)
        assert item["task_id"] == str(event.task_id)
        assert item["task_title"] == "Write the plan"
        assert item["event_id"] == str(event.event_id)
        assert item["read_at"] is None
        assert inbox.list(owner_auth) == {"items": [], "next_cursor": None}

    def test_a_completion_by_the_assignee_appears_in_the_owners_inbox(
        self, inbox: Inbox, users: Users
    ) -> None:
        owner, owner_auth = users.add()
        assignee, assignee_auth = users.add()
        inbox.deliver(status_changed(owner=owner, by=assignee, assignee=assignee, status=TaskStatus.DONE))
        (item,) = inbox.list(owner_auth)["items"]
        assert (item["kind"], item["actor_id"]) == ("task_completed", str(assignee))
        assert inbox.list(assignee_auth)["items"] == []

    def test_the_list_is_newest_first(self, inbox: Inbox, users: Users) -> None:
        user, auth = users.add()
        events = [inbox.notify(user, title=f"t{i}") for i in range(4)]
        items = inbox.list(auth)["items"]
        assert [i["event_id"] for i in items] == [str(e.event_id) for e in reversed(events)]

    def test_pages_hold_every_notification_once_in_order(self, inbox: Inbox, users: Users) -> None:
        user, auth = users.add()
        events = [inbox.notify(user, title=f"t{i}") for i in range(7)]
        first = inbox.list(auth, limit=3)
        assert len(first["items"]) == 3
        assert first["next_cursor"]
        items = _all_pages(inbox, auth, limit=3)
        assert [i["event_id"] for i in items] == [str(e.event_id) for e in reversed(events)]

    def test_notifications_made_at_the_same_moment_page_without_gaps(
        self, inbox: Inbox, users: Users
    ) -> None:
        user, auth = users.add()
        same = moment()
        events = [inbox.notify(user, at=same) for _ in range(7)]
        items = _all_pages(inbox, auth, limit=2)
        assert sorted(i["event_id"] for i in items) == sorted(str(e.event_id) for e in events)

    def test_the_unread_filter_leaves_out_what_was_read(self, inbox: Inbox, users: Users) -> None:
        user, auth = users.add()
        for i in range(3):
            inbox.notify(user, title=f"t{i}")
        read = inbox.list(auth)["items"][1]
        inbox.client.post(f"/api/v1/notifications/{read['id']}/read", headers=auth)
        unread = _all_pages(inbox, auth, unread=True, limit=1)
        assert len(unread) == 2
        assert read["id"] not in {i["id"] for i in unread}
        assert len(inbox.list(auth)["items"]) == 3

    def test_a_forged_cursor_is_refused(self, inbox: Inbox, users: Users) -> None:
        _, auth = users.add()
        response = inbox.client.get(
            "/api/v1/notifications", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=auth
        )
        assert response.status_code == 422
        assert response.json()["code"] == "request.invalid_input"
        assert response.json()["errors"] == [{"field": "cursor", "message": "not a cursor this API issued"}]

    def test_a_cursor_with_a_naive_date_is_refused(self, inbox: Inbox, users: Users) -> None:
        _, auth = users.add()
        forged = base64.urlsafe_b64encode(f'["2026-01-01T00:00:00","{uuid.uuid4()}"]'.encode()).decode()
        response = inbox.client.get("/api/v1/notifications", params={"cursor": forged}, headers=auth)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "cursor"

    @pytest.mark.parametrize("limit", [0, 101, -1])
    def test_limit_must_be_1_to_100(self, inbox: Inbox, users: Users, limit: int) -> None:
        _, auth = users.add()
        response = inbox.client.get("/api/v1/notifications", params={"limit": limit}, headers=auth)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "limit"

    def test_the_default_page_is_50(self, inbox: Inbox, users: Users) -> None:
        user, auth = users.add()
        inbox.deliver(*(assigned(assignee=user, by=uuid.uuid4()) for _ in range(51)))
        page = inbox.list(auth)
        assert len(page["items"]) == 50
        assert page["next_cursor"]


class TestReading:
    def test_reading_marks_one_notification_read(self, inbox: Inbox, users: Users) -> None:
        user, auth = users.add()
        inbox.notify(user)
        inbox.notify(user)
        first, second = inbox.list(auth)["items"]
        response = inbox.client.post(f"/api/v1/notifications/{first['id']}/read", headers=auth)
        assert response.status_code == 200
        assert response.json()["id"] == first["id"]
        assert response.json()["read_at"] is not None
        assert inbox.unread(auth) == 1
        assert inbox.list(auth)["items"][1] == second

    def test_reading_again_keeps_the_first_reading(self, inbox: Inbox, users: Users) -> None:
        user, auth = users.add()
        inbox.notify(user)
        (item,) = inbox.list(auth)["items"]
        url = f"/api/v1/notifications/{item['id']}/read"
        first = inbox.client.post(url, headers=auth).json()
        again = inbox.client.post(url, headers=auth)
        assert again.status_code == 200
        assert again.json() == first

    def test_another_users_notification_is_not_found_and_stays_unread(
        self, inbox: Inbox, users: Users
    ) -> None:
        ada, ada_auth = users.add()
        _, bob_auth = users.add()
        inbox.notify(ada)
        (item,) = inbox.list(ada_auth)["items"]
        response = inbox.client.post(f"/api/v1/notifications/{item['id']}/read", headers=bob_auth)
        assert response.status_code == 404
        assert response.json()["code"] == "notifications.not_found"
        assert inbox.list(ada_auth)["items"] == [item]

    def test_an_unknown_notification_is_not_found(self, inbox: Inbox, users: Users) -> None:
        _, auth = users.add()
        response = inbox.client.post(f"/api/v1/notifications/{uuid.uuid4()}/read", headers=auth)
        assert response.status_code == 404
        assert response.json()["code"] == "notifications.not_found"

    def test_read_all_marks_every_unread_one_and_says_how_many(self, inbox: Inbox, users: Users) -> None:
        ada, ada_auth = users.add()
        bob, bob_auth = users.add()
        for _ in range(3):
            inbox.notify(ada)
        inbox.notify(bob)
        already = inbox.list(ada_auth)["items"][0]
        read_at = inbox.client.post(f"/api/v1/notifications/{already['id']}/read", headers=ada_auth).json()[
            "read_at"
        ]
        response = inbox.client.post("/api/v1/notifications/read-all", headers=ada_auth)
        assert response.status_code == 200
        assert response.json() == {"marked": 2}
        items = inbox.list(ada_auth)["items"]
        assert all(i["read_at"] for i in items)
        assert next(i for i in items if i["id"] == already["id"])["read_at"] == read_at
        assert inbox.unread(ada_auth) == 0
        assert inbox.unread(bob_auth) == 1

    def test_read_all_with_nothing_unread_marks_none(self, inbox: Inbox, users: Users) -> None:
        _, auth = users.add()
        response = inbox.client.post("/api/v1/notifications/read-all", headers=auth)
        assert response.status_code == 200
        assert response.json() == {"marked": 0}

    def test_the_unread_count_counts_the_callers_unread_notifications(
        self, inbox: Inbox, users: Users
    ) -> None:
        ada, ada_auth = users.add()
        bob, _ = users.add()
        assert inbox.unread(ada_auth) == 0
        for _ in range(4):
            inbox.notify(ada)
        inbox.notify(bob)
        assert inbox.unread(ada_auth) == 4


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_signed_in_user(inbox: Inbox, method: str, path: str) -> None:
    response = inbox.client.request(method, path)
    assert response.status_code == 401
    assert response.json()["code"] == "auth.unauthorized"
