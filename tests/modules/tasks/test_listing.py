"""Listing the caller's tasks: filters, sorts, cursors, and at most one identity call per page."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from app.composition.web import create_app
from app.kernel.config import CacheSettings, Settings
from tests.conftest import run_async
from tests.fakes.identity import FakeIdentity
from tests.modules.tasks.conftest import People, compose_tasks_alone, create_task

Client = TestClient[Any]


def _all_pages(client: Client, auth: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/tasks", params=query, headers=auth)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_the_list_holds_what_the_caller_owns_or_is_assigned(tasks_client: Client, people: People) -> None:
    ada_id, ada = people.add("Ada")
    bob_id, bob = people.add("Bob")
    mine = create_task(tasks_client, ada, title="Ada's own")
    given = create_task(tasks_client, bob, title="Bob's, for Ada", assignee_id=str(ada_id))
    create_task(tasks_client, bob, title="Bob's own")
    titles = {t["title"] for t in _all_pages(tasks_client, ada)}
    assert titles == {mine["title"], given["title"]}
    assert bob_id  # Bob sees his two plus nothing of Ada's
    assert {t["title"] for t in _all_pages(tasks_client, bob)} == {"Bob's, for Ada", "Bob's own"}


def test_the_default_page_is_50_newest_first(tasks_client: Client, people: People) -> None:
    _, auth = people.add("Ada")
    created = [create_task(tasks_client, auth, title=f"t{i}")["id"] for i in range(55)]
    page = tasks_client.get("/api/v1/tasks", headers=auth).json()
    assert len(page["items"]) == 50
    assert [t["id"] for t in page["items"]] == created[::-1][:50]
    assert page["next_cursor"]


@pytest.mark.parametrize("limit", [0, 101, -1])
def test_limit_must_be_1_to_100(tasks_client: Client, people: People, limit: int) -> None:
    _, auth = people.add("Ada")
    response = tasks_client.get("/api/v1/tasks", params={"limit": limit}, headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "limit"


def test_filters(tasks_client: Client, people: People) -> None:
    _, ada = people.add("Ada")
    bob_id, _ = people.add("Bob")
    create_task(tasks_client, ada, title="Buy milk", labels=["home"], due_at="2030-01-01T00:00:00Z")
    create_task(tasks_client, ada, title="Write report", labels=["work"], assignee_id=str(bob_id))
    done = create_task(tasks_client, ada, title="Old chore", labels=["home"], due_at="2029-01-01T00:00:00Z")
    tasks_client.patch(f"/api/v1/tasks/{done['id']}", json={"status": "done"}, headers=ada)

    def titles(**params: Any) -> set[str]:
        return {t["title"] for t in _all_pages(tasks_client, ada, **params)}

    assert titles(status="done") == {"Old chore"}
    assert titles(status=["todo", "done"]) == {"Buy milk", "Write report", "Old chore"}
    assert titles(label="home") == {"Buy milk", "Old chore"}
    assert titles(assignee_id=str(bob_id)) == {"Write report"}
    assert titles(q="MILK") == {"Buy milk"}
    assert titles(q="%") == set()
    assert titles(q="_") == set()
    create_task(tasks_client, ada, title="Raise 5% of a_b/c")
    assert titles(q="5%") == {"Raise 5% of a_b/c"}  # %, _ and / are matched as themselves
    assert titles(q="a_b/") == {"Raise 5% of a_b/c"}
    assert titles(q="ab") == set()
    assert titles(due_before="2029-06-01T00:00:00Z") == {"Old chore"}
    assert titles(label="home", status="todo") == {"Buy milk"}
    assert titles(q="e", status="todo", order="asc", limit=1) == {"Write report", "Raise 5% of a_b/c"}


def test_an_unknown_status_filter_is_422(tasks_client: Client, people: People) -> None:
    _, auth = people.add("Ada")
    response = tasks_client.get("/api/v1/tasks", params={"status": "sleeping"}, headers=auth)
    assert response.status_code == 422


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_priority_pages_through_every_task_in_order(
    tasks_client: Client, people: People, order: str
) -> None:
    _, auth = people.add("Ada")
    priorities = ["low", "normal", "high", "urgent"]
    for i in range(23):
        create_task(tasks_client, auth, title=f"t{i}", priority=priorities[i % 4])
    items = _all_pages(tasks_client, auth, sort="priority", order=order, limit=5)
    assert len(items) == 23
    assert len({t["id"] for t in items}) == 23
    ranks = [priorities.index(t["priority"]) for t in items]
    assert ranks == sorted(ranks, reverse=order == "desc")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sort_by_due_date_puts_undated_tasks_last_ascending(
    tasks_client: Client, people: People, order: str
) -> None:
    _, auth = people.add("Ada")
    create_task(tasks_client, auth, title="no date")
    create_task(tasks_client, auth, title="late", due_at="2031-01-01T00:00:00Z")
    create_task(tasks_client, auth, title="soon", due_at="2030-01-01T00:00:00Z")
    create_task(tasks_client, auth, title="also no date")
    items = _all_pages(tasks_client, auth, sort="due_at", order=order, limit=1)
    titles = [t["title"] for t in items]
    if order == "asc":
        assert titles[:2] == ["soon", "late"]
        assert set(titles[2:]) == {"no date", "also no date"}
    else:
        assert titles[2:] == ["late", "soon"]


def test_a_cursor_for_another_sort_is_refused(tasks_client: Client, people: People) -> None:
    _, auth = people.add("Ada")
    for i in range(3):
        create_task(tasks_client, auth, title=f"t{i}")
    cursor = tasks_client.get("/api/v1/tasks", params={"limit": 1}, headers=auth).json()["next_cursor"]
    response = tasks_client.get("/api/v1/tasks", params={"cursor": cursor, "sort": "priority"}, headers=auth)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"


def test_a_forged_cursor_is_refused(tasks_client: Client, people: People) -> None:
    _, auth = people.add("Ada")
    response = tasks_client.get("/api/v1/tasks", params={"cursor": "bm90LWEtY3Vyc29y"}, headers=auth)
    assert response.status_code == 422


def test_pagination_returns_every_task_exactly_once_while_tasks_are_created(
    tasks_client: Client, people: People
) -> None:
    _, auth = people.add("Ada")
    existing = {create_task(tasks_client, auth, title=f"before {i}")["id"] for i in range(60)}
    stop = threading.Event()
    added: list[str] = []

    def keep_creating() -> None:
        while not stop.is_set() and len(added) < 200:
            added.append(create_task(tasks_client, auth, title="during")["id"])

    writer = threading.Thread(target=keep_creating)
    writer.start()
    try:
        for order in ("desc", "asc"):
            seen = [t["id"] for t in _all_pages(tasks_client, auth, order=order, limit=7)]
            assert len(seen) == len(set(seen)), f"{order}: a task was returned twice"
            assert existing <= set(seen), f"{order}: a task that existed throughout was skipped"
    finally:
        stop.set()
        writer.join(timeout=30)
    assert added, "no task was created during the listing"


def test_profiles_come_from_one_identity_call_per_page(
    tasks_client: Client, people: People, identity: FakeIdentity
) -> None:
    ada_id, ada = people.add("Ada")
    helpers = [people.add(f"Helper {i}")[0] for i in range(5)]
    for i in range(20):
        create_task(tasks_client, ada, title=f"t{i}", assignee_id=str(helpers[i % 5]))
    identity.calls.clear()
    page = tasks_client.get("/api/v1/tasks", headers=ada).json()
    assert identity.calls.count("get_users") <= 1  # none while the names the creates fetched are fresh
    assert {t["assignee"]["display_name"] for t in page["items"]} == {f"Helper {i}" for i in range(5)}
    assert {t["owner"]["display_name"] for t in page["items"]} == {"Ada"}
    assert str(ada_id) == page["items"][0]["owner"]["id"]


def test_an_empty_list(tasks_client: Client, people: People) -> None:
    _, auth = people.add("Nobody")
    assert tasks_client.get("/api/v1/tasks", headers=auth).json() == {"items": [], "next_cursor": None}


def test_a_user_identity_no_longer_knows_shows_without_a_name(
    settings: Settings, identity: FakeIdentity
) -> None:
    uncached = msgspec.structs.replace(settings, cache=CacheSettings(profile_seconds=0))  # no copy to show
    composition = compose_tasks_alone(uncached, identity)

    async def migrate() -> None:
        await composition.upgrade()
        await composition.aclose()  # the app makes its own connections, on its own loop

    run_async(migrate())
    people = People(identity, composition)
    with TestClient(app=create_app(composition)) as client:
        ada_id, auth = people.add("Ada")
        task = create_task(client, auth)
        identity.remove_user(ada_id)
        response = client.get(f"/api/v1/tasks/{task['id']}", headers=auth)
    assert response.json()["owner"]["display_name"] is None
    assert uuid.UUID(response.json()["owner"]["id"])
