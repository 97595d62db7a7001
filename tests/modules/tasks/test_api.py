"""The tasks API, with identity played by its verified fake."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.fakes.identity import FakeIdentity
from tests.modules.tasks.conftest import People, create_task

Client = TestClient[Any]


class TestCreate:
    def test_creating_answers_201_with_location_and_etag(self, tasks_client: Client, people: People) -> None:
        owner, auth = people.add("Ada")
        response = tasks_client.post(
            "/api/v1/tasks",
            json={"title": "Write the plan", "priority": "high", "labels": ["docs", "q4"]},
            headers=auth,
        )
        assert response.status_code == 201
        task = response.json()
        assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
        assert response.headers["etag"] == '"1"'
        assert task["status"] == "todo"
        assert task["priority"] == "high"
        assert task["labels"] == ["docs", "q4"]
        assert task["owner"] == {"id": str(owner), "display_name": "Ada"}
        assert task["assignee"] is None
        assert task["version"] == 1

    def test_the_assignee_must_be_an_existing_user(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        response = tasks_client.post(
            "/api/v1/tasks", json={"title": "x", "assignee_id": str(uuid.uuid4())}, headers=auth
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [{"field": "assignee_id", "message": "no such user"}]

    def test_the_assignee_must_be_an_active_user(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        gone, _ = people.add("Gone", active=False)
        response = tasks_client.post(
            "/api/v1/tasks", json={"title": "x", "assignee_id": str(gone)}, headers=auth
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "assignee_id"

    def test_the_assignee_is_asked_of_identity_through_its_contract(
        self, tasks_client: Client, people: People, identity: FakeIdentity
    ) -> None:
        _, auth = people.add("Ada")
        bob, _ = people.add("Bob")
        identity.calls.clear()
        task = create_task(tasks_client, auth, assignee_id=str(bob))
        assert task["assignee"] == {"id": str(bob), "display_name": "Bob"}
        assert identity.calls == ["require_active_user", "get_users"]

    @pytest.mark.parametrize(
        ("fields", "bad"),
        [
            ({"title": ""}, {"title"}),
            ({"title": "x" * 201}, {"title"}),
            ({"title": "ok", "description": "d" * 10_001}, {"description"}),
            ({"title": "ok", "labels": [f"l{i}" for i in range(21)]}, {"labels"}),
            ({"title": "ok", "labels": ["x" * 51]}, {"labels"}),
            ({"title": "ok", "priority": "whenever"}, {"priority"}),
            ({"title": "", "priority": "whenever", "colour": "red"}, {"title", "priority", "colour"}),
        ],
    )
    def test_invalid_fields_are_each_named(
        self, tasks_client: Client, people: People, fields: dict[str, Any], bad: set[str]
    ) -> None:
        _, auth = people.add("Ada")
        response = tasks_client.post("/api/v1/tasks", json=fields, headers=auth)
        assert response.status_code == 422
        assert {e["field"] for e in response.json()["errors"]} == bad

    def test_a_blank_title_is_refused(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        response = tasks_client.post("/api/v1/tasks", json={"title": "   "}, headers=auth)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "title"

    def test_a_retried_create_with_the_same_key_returns_the_first_task(
        self, tasks_client: Client, people: People
    ) -> None:
        _, auth = people.add("Ada")
        headers = {**auth, "Idempotency-Key": "create-1"}
        first = tasks_client.post("/api/v1/tasks", json={"title": "Once"}, headers=headers)
        again = tasks_client.post("/api/v1/tasks", json={"title": "Once"}, headers=headers)
        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        assert len(tasks_client.get("/api/v1/tasks", headers=auth).json()["items"]) == 1

    def test_the_same_key_with_a_different_body_is_refused(
        self, tasks_client: Client, people: People
    ) -> None:
        _, auth = people.add("Ada")
        headers = {**auth, "Idempotency-Key": "create-1"}
        tasks_client.post("/api/v1/tasks", json={"title": "Once"}, headers=headers)
        response = tasks_client.post("/api/v1/tasks", json={"title": "Twice"}, headers=headers)
        assert response.status_code == 422
        assert response.json()["code"] == "tasks.idempotency_key_reused"

    def test_keys_are_private_to_each_user(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        _, bob = people.add("Bob")
        one = tasks_client.post("/api/v1/tasks", json={"title": "A"}, headers={**ada, "Idempotency-Key": "k"})
        two = tasks_client.post("/api/v1/tasks", json={"title": "B"}, headers={**bob, "Idempotency-Key": "k"})
        assert one.json()["id"] != two.json()["id"]

    def test_concurrent_retries_with_one_key_create_one_task(
        self, tasks_client: Client, people: People
    ) -> None:
        _, auth = people.add("Ada")
        headers = {**auth, "Idempotency-Key": "race"}
        results: list[Any] = []
        start = threading.Barrier(4)

        def attempt() -> None:
            start.wait()
            results.append(tasks_client.post("/api/v1/tasks", json={"title": "Race"}, headers=headers))

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert [r.status_code for r in results] == [201] * 4
        assert len({r.json()["id"] for r in results}) == 1


class TestReadAndVisibility:
    def test_a_task_is_read_with_its_etag(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth)
        response = tasks_client.get(f"/api/v1/tasks/{task['id']}", headers=auth)
        assert response.status_code == 200
        assert response.headers["etag"] == '"1"'
        assert response.json() == task

    @pytest.mark.parametrize("labels", [["q4", "docs", "alpha"], []])
    def test_a_task_is_read_with_its_labels_in_their_order(
        self, tasks_client: Client, people: People, labels: list[str]
    ) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth, labels=labels)
        assert tasks_client.get(f"/api/v1/tasks/{task['id']}", headers=auth).json()["labels"] == labels

    def test_the_assignee_can_read_the_task(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        bob_id, bob = people.add("Bob")
        task = create_task(tasks_client, ada, assignee_id=str(bob_id))
        assert tasks_client.get(f"/api/v1/tasks/{task['id']}", headers=bob).status_code == 200

    def test_a_stranger_can_neither_read_edit_nor_delete(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        _, carol = people.add("Carol")
        task = create_task(tasks_client, ada)
        url = f"/api/v1/tasks/{task['id']}"
        for response in (
            tasks_client.get(url, headers=carol),
            tasks_client.patch(url, json={"title": "mine now"}, headers=carol),
            tasks_client.delete(url, headers=carol),
        ):
            assert response.status_code == 404
            assert response.json()["code"] == "tasks.task_not_found"
        assert tasks_client.get(url, headers=ada).json()["title"] == "A task"

    def test_an_unknown_task_is_404(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        assert tasks_client.get(f"/api/v1/tasks/{uuid.uuid4()}", headers=auth).status_code == 404

    def test_tasks_need_a_token(self, tasks_client: Client) -> None:
        assert tasks_client.get("/api/v1/tasks").status_code == 401


class TestUpdate:
    def test_a_partial_update_changes_only_what_was_sent(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth, description="keep me", labels=["a"])
        response = tasks_client.patch(
            f"/api/v1/tasks/{task['id']}", json={"title": "New title"}, headers=auth
        )
        assert response.status_code == 200
        updated = response.json()
        assert (updated["title"], updated["description"], updated["labels"]) == (
            "New title",
            "keep me",
            ["a"],
        )
        assert updated["version"] == 2
        assert response.headers["etag"] == '"2"'

    def test_null_clears_the_due_date(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth, due_at="2030-01-01T12:00:00Z")
        assert task["due_at"] == "2030-01-01T12:00:00Z"
        updated = tasks_client.patch(
            f"/api/v1/tasks/{task['id']}", json={"due_at": None}, headers=auth
        ).json()
        assert updated["due_at"] is None

    def test_a_stale_etag_is_412(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth)
        url = f"/api/v1/tasks/{task['id']}"
        tasks_client.patch(url, json={"title": "first edit"}, headers={**auth, "If-Match": '"1"'})
        response = tasks_client.patch(url, json={"title": "lost update"}, headers={**auth, "If-Match": '"1"'})
        assert response.status_code == 412
        assert response.json()["code"] == "tasks.version_mismatch"
        assert tasks_client.get(url, headers=auth).json()["title"] == "first edit"

    def test_the_current_etag_is_accepted(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth)
        url = f"/api/v1/tasks/{task['id']}"
        etag = tasks_client.get(url, headers=auth).headers["etag"]
        assert (
            tasks_client.patch(url, json={"title": "ok"}, headers={**auth, "If-Match": etag}).status_code
            == 200
        )

    @pytest.mark.parametrize(
        ("path", "allowed"),
        [
            (["in_progress"], True),
            (["done"], True),
            (["cancelled"], True),
            (["done", "todo"], True),
            (["done", "in_progress"], True),
            (["cancelled", "todo"], True),
            (["done", "cancelled"], False),
            (["cancelled", "done"], False),
            (["cancelled", "in_progress"], False),
        ],
    )
    def test_status_moves_only_along_allowed_transitions(
        self, tasks_client: Client, people: People, path: list[str], allowed: bool
    ) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth)
        url = f"/api/v1/tasks/{task['id']}"
        for step in path[:-1]:
            assert tasks_client.patch(url, json={"status": step}, headers=auth).status_code == 200
        response = tasks_client.patch(url, json={"status": path[-1]}, headers=auth)
        if allowed:
            assert response.status_code == 200
            assert response.json()["status"] == path[-1]
        else:
            assert response.status_code == 409
            assert response.json()["code"] == "tasks.invalid_transition"

    def test_the_assignee_may_edit_and_complete(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        bob_id, bob = people.add("Bob")
        task = create_task(tasks_client, ada, assignee_id=str(bob_id))
        response = tasks_client.patch(
            f"/api/v1/tasks/{task['id']}", json={"status": "done", "title": "Done by Bob"}, headers=bob
        )
        assert response.status_code == 200
        assert response.json()["status"] == "done"

    def test_only_the_owner_may_reassign(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        bob_id, bob = people.add("Bob")
        carol_id, _ = people.add("Carol")
        task = create_task(tasks_client, ada, assignee_id=str(bob_id))
        url = f"/api/v1/tasks/{task['id']}"
        response = tasks_client.patch(url, json={"assignee_id": str(carol_id)}, headers=bob)
        assert response.status_code == 403
        assert response.json()["code"] == "tasks.not_permitted"
        moved = tasks_client.patch(url, json={"assignee_id": str(carol_id)}, headers=ada)
        assert moved.json()["assignee"] == {"id": str(carol_id), "display_name": "Carol"}

    def test_reassigning_to_a_deactivated_user_is_refused(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        gone, _ = people.add("Gone", active=False)
        task = create_task(tasks_client, ada)
        response = tasks_client.patch(
            f"/api/v1/tasks/{task['id']}", json={"assignee_id": str(gone)}, headers=ada
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "assignee_id"

    def test_reopening_a_task_whose_assignee_left_gives_it_to_nobody(
        self, tasks_client: Client, people: People, identity: FakeIdentity
    ) -> None:
        ada, bob_id, url, _ = _done_by_bob(tasks_client, people)
        identity.deactivate(bob_id)
        assert tasks_client.get(url, headers=ada).json()["assignee"]["id"] == str(bob_id)  # history kept
        reopened = tasks_client.patch(url, json={"status": "in_progress"}, headers=ada)
        assert reopened.status_code == 200, reopened.text
        assert (reopened.json()["status"], reopened.json()["assignee"]) == ("in_progress", None)

    def test_reopening_keeps_an_active_assignee(self, tasks_client: Client, people: People) -> None:
        ada, bob_id, url, _ = _done_by_bob(tasks_client, people)
        reopened = tasks_client.patch(url, json={"status": "todo"}, headers=ada).json()
        assert reopened["assignee"] == {"id": str(bob_id), "display_name": "Bob"}

    def test_reopening_for_a_user_who_left_is_refused_and_changes_nothing(
        self, tasks_client: Client, people: People, identity: FakeIdentity
    ) -> None:
        ada, bob_id, url, done = _done_by_bob(tasks_client, people)
        identity.deactivate(bob_id)
        response = tasks_client.patch(url, json={"status": "todo", "assignee_id": str(bob_id)}, headers=ada)
        assert response.status_code == 422
        assert response.json()["errors"] == [{"field": "assignee_id", "message": "the user is deactivated"}]
        assert tasks_client.get(url, headers=ada).json() == done

    def test_unknown_fields_are_422(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth)
        response = tasks_client.patch(
            f"/api/v1/tasks/{task['id']}", json={"owner_id": str(uuid.uuid4())}, headers=auth
        )
        assert response.status_code == 422
        assert {e["field"] for e in response.json()["errors"]} == {"owner_id"}

    def test_a_refused_update_changes_nothing(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth)
        url = f"/api/v1/tasks/{task['id']}"
        tasks_client.patch(url, json={"title": "kept?", "labels": ["x" * 51]}, headers=auth)
        assert tasks_client.get(url, headers=auth).json() == task


class TestDelete:
    def test_the_owner_deletes(self, tasks_client: Client, people: People) -> None:
        _, auth = people.add("Ada")
        task = create_task(tasks_client, auth, labels=["x"])
        url = f"/api/v1/tasks/{task['id']}"
        assert tasks_client.delete(url, headers=auth).status_code == 204
        assert tasks_client.get(url, headers=auth).status_code == 404

    def test_an_assignee_cannot_delete(self, tasks_client: Client, people: People) -> None:
        _, ada = people.add("Ada")
        bob_id, bob = people.add("Bob")
        task = create_task(tasks_client, ada, assignee_id=str(bob_id))
        response = tasks_client.delete(f"/api/v1/tasks/{task['id']}", headers=bob)
        assert response.status_code == 403
        assert tasks_client.get(f"/api/v1/tasks/{task['id']}", headers=ada).status_code == 200


def _done_by_bob(client: Client, people: People) -> tuple[dict[str, str], uuid.UUID, str, dict[str, Any]]:
    """Ada's task, assigned to Bob and completed by him: Ada's auth, Bob's id, the URL, the task."""
    _, ada = people.add("Ada")
    bob_id, bob = people.add("Bob")
    url = f"/api/v1/tasks/{create_task(client, ada, assignee_id=str(bob_id))['id']}"
    done = client.patch(url, json={"status": "done"}, headers=bob)
    assert done.status_code == 200, done.text
    return ada, bob_id, url, done.json()
