"""Activity's REST API: timelines for who may see the task, feeds, weekly figures, the audit feed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.identity import AccountClosed, AdministratorGranted, UserDeactivated, UserReactivated
from contracts.tasks import TaskStatus
from tests.modules.activity.conftest import Api, World


def test_a_timeline_is_newest_first_for_the_owner_and_assignee_and_404_for_anyone_else(
    world: World, api: Api
) -> None:
    ada, bob, carol = world.user("Ada"), world.user("Bob"), world.user("Carol")
    created = world.created(ada, title="Plan")
    api.deliver(created, world.assigned(created, to=bob), world.status(created, by=bob, to=TaskStatus.DONE))
    path = f"/api/v1/tasks/{created.task_id}/activity"
    for reader in (ada, bob):
        page = api.get(path, reader)
        assert [e["kind"] for e in page["items"]] == ["task.status_changed", "task.assigned", "task.created"]
        assert [e["actor_id"] for e in page["items"]] == [str(bob), str(ada), str(ada)]
        assert page["items"][2]["id"] == str(created.event_id)
        assert page["items"][2]["data"]["title"] == "Plan"
        assert page["state"] is None  # only with as_of
    assert api.get(path, carol, status=404)["code"] == "activity.task_not_found"
    unknown = f"/api/v1/tasks/{world.created(carol).task_id}/activity"
    assert api.get(unknown, ada, status=404)["code"] == "activity.task_not_found"


def test_a_timeline_pages_with_a_cursor_and_refuses_a_forged_one(world: World, api: Api) -> None:
    ada = world.user("Ada")
    created = world.created(ada)
    moves = [TaskStatus.IN_PROGRESS, TaskStatus.TODO] * 3
    api.deliver(
        created,
        *(world.status(created, by=ada, to=to, previous=TaskStatus.TODO) for to in moves),
    )
    path = f"/api/v1/tasks/{created.task_id}/activity"
    seen, cursor = [], None
    while True:
        page = api.get(path, ada, limit=3, **({"cursor": cursor} if cursor else {}))
        seen += [e["id"] for e in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert len(seen) == len(set(seen)) == 7
    assert api.get(path, ada, status=422, cursor="bm90IGEgY3Vyc29y")["errors"][0]["field"] == "cursor"


def test_as_of_answers_the_task_as_it_was_then_from_when_tasks_committed_each_change(
    world: World, api: Api
) -> None:
    ada, bob, carol = world.user("Ada"), world.user("Bob"), world.user("Carol")
    at = datetime(2026, 5, 4, 12, tzinfo=UTC)
    created = world.created(ada, title="Travel", at=at)
    api.deliver(  # delivered in order, but these times are when tasks committed them
        created,
        world.assigned(created, to=bob, at=at + timedelta(hours=1)),
        world.status(created, by=bob, to=TaskStatus.IN_PROGRESS, at=at + timedelta(hours=2)),
        world.assigned(created, to=carol, previous=bob, at=at + timedelta(hours=3)),
    )
    path = f"/api/v1/tasks/{created.task_id}/activity"
    then = api.get(path, ada, as_of=(at + timedelta(hours=2, minutes=30)).isoformat())
    assert then["state"]["status"] == "in_progress"
    assert then["state"]["assignee_id"] == str(bob)
    assert then["state"]["title"] == "Travel"
    assert then["state"]["labels"] == ["history"]
    assert then["state"]["updated_at"] == "2026-05-04T14:00:00Z"
    assert len(then["items"]) == 3
    before = api.get(path, ada, as_of=(at - timedelta(seconds=1)).isoformat())
    assert (before["state"], before["items"]) == (None, [])
    now = api.get(path, carol, as_of=(at + timedelta(days=1)).isoformat())
    assert now["state"]["assignee_id"] == str(carol)
    naive = api.get(path, ada, status=422, as_of="2026-05-04T12:00:00")
    assert naive["errors"][0]["field"] == "as_of"


def test_the_feed_holds_what_happened_to_my_tasks_and_what_i_did(world: World, api: Api) -> None:
    ada, bob, carol = world.user("Ada"), world.user("Bob"), world.user("Carol")
    mine = world.created(ada, title="Mine")
    theirs = world.created(carol, title="Carol's")
    api.deliver(
        world.registered(bob, "Bob"),
        mine,
        world.assigned(mine, to=bob),
        theirs,
        world.assigned(theirs, to=bob),
        world.status(theirs, by=bob, to=TaskStatus.IN_PROGRESS),
    )
    ada_feed = api.get("/api/v1/activity", ada)["items"]
    assert [(e["kind"], e["task_id"]) for e in ada_feed] == [
        ("task.assigned", str(mine.task_id)),
        ("task.created", str(mine.task_id)),
    ]
    bob_feed = api.get("/api/v1/activity", bob)["items"]
    assert [e["kind"] for e in bob_feed] == [
        "task.status_changed",
        "task.assigned",
        "task.assigned",
        "user.registered",
    ]
    assert bob_feed[-1]["user_id"] == str(bob)
    assert bob_feed[-1]["data"] == {"display_name": "Bob"}


def test_weekly_figures_count_creations_completions_reopenings_and_the_median_time_to_done(
    world: World, api: Api
) -> None:
    ada, bob = world.user("Ada"), world.user("Bob")
    monday = datetime(2026, 6, 1, 8, tzinfo=UTC)  # 2026-W23
    first = world.created(ada, at=monday)
    second = world.created(ada, at=monday)
    third = world.created(ada, at=monday + timedelta(weeks=1))
    api.deliver(
        first,
        second,
        third,
        world.status(first, by=ada, to=TaskStatus.DONE, at=monday + timedelta(hours=2)),
        world.status(second, by=ada, to=TaskStatus.DONE, at=monday + timedelta(hours=6)),
        world.status(
            second, by=ada, to=TaskStatus.TODO, previous=TaskStatus.DONE, at=monday + timedelta(days=8)
        ),
        world.status(third, by=bob, to=TaskStatus.DONE, at=monday + timedelta(days=8)),
    )
    stats = api.get(
        "/api/v1/activity/stats",
        ada,
        **{"from": monday.isoformat(), "to": (monday + timedelta(days=20)).isoformat()},
    )
    assert stats["user_id"] == str(ada)
    assert stats["weeks"] == [
        {"week": "2026-W23", "created": 2, "completed": 2, "reopened": 0, "median_hours_to_done": 4.0},
        {"week": "2026-W24", "created": 1, "completed": 0, "reopened": 1, "median_hours_to_done": None},
        {"week": "2026-W25", "created": 0, "completed": 0, "reopened": 0, "median_hours_to_done": None},
    ]
    bobs = api.get("/api/v1/activity/stats", bob, to=(monday + timedelta(days=9)).isoformat())
    assert len(bobs["weeks"]) == 12  # the default: twelve weeks to `to`
    assert bobs["weeks"][-1]["completed"] == 1
    assert bobs["weeks"][-1]["median_hours_to_done"] == 24.0  # done a day after its creation
    assert api.get("/api/v1/activity/stats", ada, status=403, user_id=str(bob))["code"] == (
        "activity.not_permitted"
    )
    backwards = {"from": (monday + timedelta(weeks=2)).isoformat(), "to": monday.isoformat()}
    assert api.get("/api/v1/activity/stats", ada, status=422, **backwards)["errors"][0]["field"] == "from"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"to": "0001-02-05T09:57:18+06:38"}, "to"),  # twelve weeks before it: before the year 1
        ({"to": "9999-12-30T00:00:00Z"}, "to"),  # its week ends after the year 9999
        ({"from": "0001-01-01T00:00:00Z", "to": "9999-12-01T00:00:00Z"}, "from"),  # 520,000 weeks
    ],
)
def test_figures_for_weeks_off_the_calendar_are_refused_naming_the_moment(
    world: World, api: Api, query: dict[str, str], field: str
) -> None:
    ada = world.user("Ada")
    refused = api.get("/api/v1/activity/stats", ada, status=422, **query)
    assert refused["code"] == "request.invalid_input"
    assert [e["field"] for e in refused["errors"]] == [field]


def test_administrators_see_the_audit_feed_and_anyones_figures_others_do_not(world: World, api: Api) -> None:
    root, ada, bob = world.user("Root"), world.user("Ada"), world.user("Bob")
    world.identity.make_admin(root)
    at = datetime(2026, 7, 1, tzinfo=UTC)
    api.deliver(
        AdministratorGranted(event_id=uuid.uuid4(), occurred_at=at, user_id=root, granted_by=None),
        UserDeactivated(event_id=uuid.uuid4(), occurred_at=at, user_id=ada, deactivated_by=ada),  # herself
        UserDeactivated(event_id=uuid.uuid4(), occurred_at=at, user_id=bob, deactivated_by=root),
        UserReactivated(event_id=uuid.uuid4(), occurred_at=at, user_id=bob, reactivated_by=root),
        AccountClosed(event_id=uuid.uuid4(), occurred_at=at, user_id=ada, closed_by=ada),  # her own
        AccountClosed(event_id=uuid.uuid4(), occurred_at=at, user_id=bob, closed_by=root),  # on his behalf
    )
    audit = api.get("/api/v1/admin/audit", root)["items"]
    assert [(e["kind"], e["actor_id"], e["user_id"]) for e in audit] == [
        ("user.account_closed", str(root), str(bob)),
        ("user.reactivated", str(root), str(bob)),
        ("user.deactivated", str(root), str(bob)),
        ("user.administrator_granted", None, str(root)),
    ]
    assert api.get("/api/v1/admin/audit", ada, status=403)["code"] == "activity.not_permitted"
    assert api.get("/api/v1/activity/stats", root, user_id=str(ada))["user_id"] == str(ada)
