"""The public API flow of the tasks issue, as a client drives it against any topology."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx


def _json(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    return response.json() if response.content else None


T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, within: float, what: str) -> T:
    """``probe()``'s first non-None answer, polled until ``within`` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        if (answer := probe()) is not None:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.02)


def notifications_of(http: httpx.Client, auth: dict[str, str], task_id: str, kind: str) -> list[Any] | None:
    """The caller's notifications of ``kind`` about ``task_id``, or None while there are none."""
    items = _json(http.get("/api/v1/notifications", headers=auth), 200)["items"]
    found = [n for n in items if n["task_id"] == task_id and n["kind"] == kind]
    return found or None


def register_and_log_in(http: httpx.Client, name: str) -> tuple[str, dict[str, str]]:
    email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
    user = _json(
        http.post(
            "/api/v1/users", json={"email": email, "password": "correct horse battery", "display_name": name}
        ),
        201,
    )
    tokens = _json(
        http.post("/api/v1/auth/token", json={"email": email, "password": "correct horse battery"}), 200
    )
    return user["id"], {"Authorization": f"Bearer {tokens['access_token']}"}


def run_public_flow(base: str) -> None:
    """Every rule of the task API, end to end, through one public address."""
    with httpx.Client(base_url=base, timeout=15) as http:
        ada_id, ada = register_and_log_in(http, "Ada")
        bob_id, bob = register_and_log_in(http, "Bob")
        _, carol = register_and_log_in(http, "Carol")
        assert _json(http.get("/api/v1/users/me", headers=ada), 200)["id"] == ada_id

        # create, assigned to Bob; a retried create with the same key is the same task
        body = {"title": "Ship the split", "labels": ["e2e"], "priority": "high", "assignee_id": bob_id}
        created = http.post("/api/v1/tasks", json=body, headers={**ada, "Idempotency-Key": "ship-1"})
        task = _json(created, 201)
        assert created.headers["location"] == f"/api/v1/tasks/{task['id']}"
        assert task["assignee"] == {"id": bob_id, "display_name": "Bob"}
        # ... and within a second it is in Bob's notifications, through the events
        (assigned,) = eventually(
            lambda: notifications_of(http, bob, task["id"], "task_assigned"),
            within=1.0,
            what="Bob is notified of the assignment",
        )
        assert assigned["actor_id"] == ada_id
        assert assigned["read_at"] is None
        assert _json(http.get("/api/v1/notifications/unread-count", headers=bob), 200) == {"unread": 1}
        read = _json(http.post(f"/api/v1/notifications/{assigned['id']}/read", headers=bob), 200)
        assert read["read_at"] is not None
        assert _json(http.get("/api/v1/notifications/unread-count", headers=bob), 200) == {"unread": 0}
        assert notifications_of(http, ada, task["id"], "task_assigned") is None
        again = _json(
            http.post("/api/v1/tasks", json=body, headers={**ada, "Idempotency-Key": "ship-1"}), 201
        )
        assert again["id"] == task["id"]
        unknown = http.post(
            "/api/v1/tasks", json={"title": "x", "assignee_id": str(uuid.uuid4())}, headers=ada
        )
        assert _json(unknown, 422)["errors"][0]["field"] == "assignee_id"

        # both see it; Carol does not
        url = f"/api/v1/tasks/{task['id']}"
        assert [
            t["id"]
            for t in _json(http.get("/api/v1/tasks", params={"label": "e2e"}, headers=bob), 200)["items"]
        ] == [task["id"]]
        for response in (
            http.get(url, headers=carol),
            http.patch(url, json={"title": "x"}, headers=carol),
            http.delete(url, headers=carol),
        ):
            assert _json(response, 404)["code"] == "tasks.task_not_found"

        # Bob starts it; a stale ETag loses; Bob may not reassign or delete
        etag = http.get(url, headers=bob).headers["etag"]
        _json(http.patch(url, json={"status": "in_progress"}, headers={**bob, "If-Match": etag}), 200)
        assert _json(http.patch(url, json={"title": "y"}, headers={**bob, "If-Match": etag}), 412)[
            "code"
        ] == ("tasks.version_mismatch")
        assert (
            _json(http.patch(url, json={"assignee_id": ada_id}, headers=bob), 403)["code"]
            == "tasks.not_permitted"
        )
        assert http.delete(url, headers=bob).status_code == 403

        # Bob completes; the forbidden move is refused; Ada pages through and deletes
        assert _json(http.patch(url, json={"status": "done"}, headers=bob), 200)["status"] == "done"
        eventually(
            lambda: notifications_of(http, ada, task["id"], "task_completed"),
            within=1.0,
            what="Ada is told Bob completed her task",
        )
        assert _json(http.patch(url, json={"status": "cancelled"}, headers=ada), 409)["code"] == (
            "tasks.invalid_transition"
        )
        for i in range(7):
            _json(http.post("/api/v1/tasks", json={"title": f"more {i}"}, headers=ada), 201)
        seen, cursor = [], None
        while True:
            page = _json(
                http.get(
                    "/api/v1/tasks",
                    params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                    headers=ada,
                ),
                200,
            )
            seen += [t["id"] for t in page["items"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert len(seen) == len(set(seen)) == 8
        assert http.delete(url, headers=ada).status_code == 204
        assert http.get(url, headers=ada).status_code == 404

        # Bob leaves: his open tasks go back to their owners, unassigned
        open_task = _json(
            http.post("/api/v1/tasks", json={"title": "open work", "assignee_id": bob_id}, headers=ada), 201
        )
        finished = _json(
            http.post("/api/v1/tasks", json={"title": "done work", "assignee_id": bob_id}, headers=ada), 201
        )
        finished_url = f"/api/v1/tasks/{finished['id']}"
        _json(http.patch(finished_url, json={"status": "done"}, headers=bob), 200)
        deactivated = _json(http.post(f"/api/v1/users/{bob_id}/deactivate", headers=bob), 200)
        assert deactivated["active"] is False
        # ... and within a second his access token is refused by every module, wherever it runs
        eventually(
            lambda: (
                all(
                    http.request(method, path, headers=bob).status_code == 401
                    for method, path in (
                        ("POST", "/api/v1/tasks"),
                        ("GET", "/api/v1/users/me"),
                        ("GET", "/api/v1/notifications"),
                    )
                )
                or None
            ),
            within=1.0,
            what="the deactivated user's access token is refused everywhere",
        )
        open_url = f"/api/v1/tasks/{open_task['id']}"
        eventually(
            lambda: _json(http.get(open_url, headers=ada), 200)["assignee"] is None or None,
            within=2.0,
            what="the deactivated user's open task is unassigned",
        )
        assert _json(http.post(f"/api/v1/users/{ada_id}/deactivate", headers=carol), 403)["code"] == (
            "identity.not_permitted"
        )
        # ... his finished work keeps his name; reopened, it is nobody's, and cannot be his again
        assert _json(http.get(finished_url, headers=ada), 200)["assignee"]["id"] == bob_id
        reopened = _json(http.patch(finished_url, json={"status": "todo"}, headers=ada), 200)
        assert (reopened["status"], reopened["assignee"]) == ("todo", None)
        again_bob = http.patch(finished_url, json={"assignee_id": bob_id}, headers=ada)
        assert _json(again_bob, 422)["errors"][0] == {
            "field": "assignee_id",
            "message": "the user is deactivated",
        }

        # OPTIONS names every method a path serves
        for path, methods in (
            ("/api/v1/tasks", "GET, OPTIONS, POST"),
            (open_url, "DELETE, GET, OPTIONS, PATCH"),
            ("/api/v1/notifications", "GET, OPTIONS"),
            ("/api/v1/auth/token", "OPTIONS, POST"),
        ):
            answer = http.options(path)
            assert (answer.status_code, answer.headers.get("allow")) == (204, methods), path

        # edges: no token, no internal routes from outside
        assert http.get("/api/v1/tasks").status_code == 401
        assert http.post("/internal/identity/get_user", json={"user_id": ada_id}).status_code == 404
        assert http.post("/internal/tasks/get_task", json={"task_id": ada_id}).status_code == 404


def timeline_of(http: httpx.Client, auth: dict[str, str], task_id: str, count: int) -> list[Any] | None:
    """The task's activity timeline once it holds ``count`` entries (None before)."""
    items: list[Any] = _json(http.get(f"/api/v1/tasks/{task_id}/activity", headers=auth), 200)["items"]
    return items if len(items) >= count else None


def run_history_flow(base: str) -> None:
    """The activity issue's flow: a task's five acts in its timeline within a second, and its past state."""
    with httpx.Client(base_url=base, timeout=15) as http:
        ada_id, ada = register_and_log_in(http, "Ada")
        bob_id, bob = register_and_log_in(http, "Bob")
        carol_id, carol = register_and_log_in(http, "Carol")
        task = _json(http.post("/api/v1/tasks", json={"title": "Write history"}, headers=ada), 201)
        url = f"/api/v1/tasks/{task['id']}"
        _json(http.patch(url, json={"assignee_id": bob_id}, headers=ada), 200)
        _json(http.patch(url, json={"status": "in_progress"}, headers=bob), 200)
        _json(http.patch(url, json={"assignee_id": carol_id}, headers=ada), 200)
        _json(http.patch(url, json={"status": "done"}, headers=carol), 200)

        timeline = eventually(
            lambda: timeline_of(http, carol, task["id"], 5), within=1.0, what="five entries in the timeline"
        )
        assert [(e["kind"], e["actor_id"]) for e in timeline] == [
            ("task.status_changed", carol_id),
            ("task.assigned", ada_id),
            ("task.status_changed", bob_id),
            ("task.assigned", ada_id),
            ("task.created", ada_id),
        ]
        assert timeline[0]["data"]["status"] == "done"
        assert timeline[1]["data"] == {
            "title": "Write history",
            "previous_assignee_id": bob_id,
            "assignee_id": carol_id,
        }
        # Between the start and the reassignment: Bob's, in progress.
        started, reassigned = timeline[2]["occurred_at"], timeline[1]["occurred_at"]
        assert started < reassigned
        past = _json(http.get(f"{url}/activity", params={"as_of": started}, headers=ada), 200)
        assert past["state"]["status"] == "in_progress"
        assert past["state"]["assignee_id"] == bob_id
        assert [e["kind"] for e in past["items"]] == ["task.status_changed", "task.assigned", "task.created"]
        # Bob is no longer on the task: its history is not his to read.
        assert _json(http.get(f"{url}/activity", headers=bob), 404)["code"] == "activity.task_not_found"


def closure_of(
    http: httpx.Client, auth: dict[str, str], location: str, *states: str
) -> dict[str, Any] | None:
    """The closure at ``location`` once its state is one of ``states``; None before."""
    closure = _json(http.get(location, headers=auth), 200)
    return closure if closure["state"] in states else None


# One route of each module that took the closing user's token before: none takes it after.
REFUSED_AFTER_CLOSING = ("/api/v1/tasks", "/api/v1/users/me", "/api/v1/notifications", "/api/v1/activity")


def export_with_activity(http: httpx.Client, auth: dict[str, str], kinds: set[str]) -> dict[str, Any] | None:
    """The caller's export once their activity holds entries of every one of ``kinds``."""
    exported = _json(http.get("/api/v1/account/export", headers=auth), 200)
    return exported if kinds <= {e["kind"] for e in exported["activity"]} else None


def run_closure_flow(base: str, *, within: float = 10.0) -> None:
    """The saga issue's flow: Ada closes her account naming Bob; her work goes to him, her data goes.

    Then Carol names someone who is deactivated meanwhile: her closure turns back.
    """
    with httpx.Client(base_url=base, timeout=15) as http:
        ada_id, ada = register_and_log_in(http, "Ada")
        bob_id, bob = register_and_log_in(http, "Bob")
        _, carol = register_and_log_in(http, "Carol")
        email = _json(http.get("/api/v1/users/me", headers=ada), 200)["email"]
        mine = _json(
            http.post("/api/v1/tasks", json={"title": "Ada's plan", "labels": ["ada"]}, headers=ada), 201
        )
        theirs = _json(
            http.post("/api/v1/tasks", json={"title": "Carol's", "assignee_id": ada_id}, headers=carol), 201
        )
        eventually(
            lambda: notifications_of(http, ada, theirs["id"], "task_assigned"),
            within=within,
            what="Ada's inbox",
        )
        exported = eventually(  # before she goes; activity's feed follows the events in a moment
            lambda: export_with_activity(http, ada, {"task.created", "task.assigned"}),
            within=within,
            what="Ada's export with her activity",
        )
        assert (exported["account"]["id"], exported["account"]["email"]) == (ada_id, email)
        assert {t["id"] for t in exported["tasks"]} == {mine["id"], theirs["id"]}
        assert [n["task_id"] for n in exported["notifications"]] == [theirs["id"]]
        assert (
            _json(http.post("/api/v1/account/closure", json={"successor_id": ada_id}, headers=ada), 422)[
                "code"
            ]
            == "accounts.successor_is_the_user"
        )

        started = http.post("/api/v1/account/closure", json={"successor_id": bob_id}, headers=ada)
        closure = _json(started, 202)
        location = started.headers["location"]
        assert location == f"/api/v1/account/closure/{closure['id']}"
        assert (closure["user_id"], closure["successor_id"]) == (ada_id, bob_id)
        # Ada follows it to its end with her old token, refused everywhere else from step 1.
        ended = eventually(
            lambda: closure_of(http, ada, location, "completed", "compensated", "stuck"),
            within=within,
            what="Ada's closure ends",
        )
        assert ended["state"] == "completed", ended
        assert [s["state"] for s in ended["steps"]] == ["done"] * 5
        assert _json(http.get(location, headers=bob), 404)["code"] == "accounts.closure_not_found"

        # ... while every other use of her token is refused, by every module, within a poll
        eventually(
            lambda: (
                all(http.get(path, headers=ada).status_code == 401 for path in REFUSED_AFTER_CLOSING) or None
            ),
            within=within,
            what="Ada's old token refused by every module",
        )
        assert _json(http.get(location, headers=ada), 200)["state"] == "completed"
        login = http.post("/api/v1/auth/token", json={"email": email, "password": "correct horse battery"})
        assert login.status_code == 401
        assert _json(http.get(f"/api/v1/tasks/{mine['id']}", headers=bob), 200)["owner"]["id"] == bob_id
        assert _json(http.get(f"/api/v1/tasks/{theirs['id']}", headers=carol), 200)["assignee"] is None
        (handed,) = eventually(
            lambda: notifications_of(http, bob, mine["id"], "task_handed_over"),
            within=within,
            what="Bob is told the task is his",
        )
        assert handed["actor_id"] is None
        history = eventually(
            lambda: timeline_of(http, bob, mine["id"], 2), within=within, what="the hand-over in the timeline"
        )
        assert history[0]["kind"] == "task.owner_changed"
        assert history[0]["data"]["owner_id"] == bob_id

        # Carol names Dave, who is deactivated: the POST accepts it (the saga, not the POST,
        # decides, since it may change while the saga runs), and the saga turns back.
        carol_email = _json(http.get("/api/v1/users/me", headers=carol), 200)["email"]
        _, dave = register_and_log_in(http, "Dave")
        dave_id = _json(http.get("/api/v1/users/me", headers=dave), 200)["id"]
        _json(http.post(f"/api/v1/users/{dave_id}/deactivate", headers=dave), 200)
        started = http.post("/api/v1/account/closure", json={"successor_id": dave_id}, headers=carol)
        _json(started, 202)
        location = started.headers["location"]
        turned = eventually(
            lambda: closure_of(http, carol, location, "completed", "compensated", "stuck"),
            within=within,
            what="Carol's closure ends",
        )
        assert turned["state"] == "compensated", turned
        assert turned["reason"].startswith("hand_over_tasks: tasks.successor_unavailable")
        assert [s["state"] for s in turned["steps"]][:2] == ["compensated", "failed"]
        eventually(  # her old session stays void
            lambda: http.get("/api/v1/tasks", headers=carol).status_code == 401 or None,
            within=within,
            what="Carol's old token refused",
        )
        again = http.post(
            "/api/v1/auth/token", json={"email": carol_email, "password": "correct horse battery"}
        )
        carol = {"Authorization": f"Bearer {_json(again, 200)['access_token']}"}  # her account is open again
        assert _json(http.get(f"/api/v1/tasks/{theirs['id']}", headers=carol), 200)["owner"]["id"] != ada_id
