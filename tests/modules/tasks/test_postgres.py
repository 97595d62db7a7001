"""The tasks module on PostgreSQL: its own schema, migrated up from empty, the API working on it."""

from __future__ import annotations

from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text

from app.composition.container import Composition
from app.composition.web import create_app
from app.kernel.config import Settings
from tests.conftest import run_async
from tests.fakes.identity import FakeIdentity
from tests.modules.tasks.conftest import People, compose_tasks_alone

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_tasks(postgres_settings: Settings) -> tuple[Composition, FakeIdentity]:
    identity = FakeIdentity()
    composition = compose_tasks_alone(postgres_settings, identity)

    async def migrate() -> None:
        await composition.upgrade()
        await composition.aclose()

    run_async(migrate())
    return composition, identity


def test_tasks_migrate_from_empty_into_their_own_schema(pg_tasks: tuple[Composition, FakeIdentity]) -> None:
    composition, _ = pg_tasks

    async def inspect() -> tuple[set[str], list[Any]]:
        database = composition.module("tasks").database
        async with database.engine.connect() as connection:
            tables = set(
                (
                    await connection.execute(
                        text("select table_name from information_schema.tables where table_schema = 'tasks'")
                    )
                ).scalars()
            )
        states = await composition.migration_states()
        await composition.aclose()
        return tables, states

    tables, states = run_async(inspect())
    assert {"tasks", "task_labels", "idempotency_keys", "alembic_version_tasks"} <= tables
    assert [s.is_current for s in states] == [True]


def test_the_task_api_works_on_postgres(pg_tasks: tuple[Composition, FakeIdentity]) -> None:
    composition, identity = pg_tasks
    people = People(identity, composition)
    _, ada = people.add("Ada")
    bob_id, bob = people.add("Bob")
    with TestClient(app=create_app(composition)) as client:
        ids = []
        for i in range(12):
            response = client.post(
                "/api/v1/tasks",
                json={"title": f"Task {i}", "labels": ["pg"], "priority": ["low", "urgent"][i % 2]},
                headers={**ada, "Idempotency-Key": f"k{i}"},
            )
            assert response.status_code == 201
            ids.append(response.json()["id"])
        replay = client.post(
            "/api/v1/tasks",
            json={"title": "Task 0", "labels": ["pg"], "priority": "low"},
            headers={**ada, "Idempotency-Key": "k0"},
        )
        assert replay.json()["id"] == ids[0]

        seen, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 5, "sort": "priority", "label": "pg"}
            page = client.get(
                "/api/v1/tasks", params=params | ({"cursor": cursor} if cursor else {}), headers=ada
            )
            seen += [t["id"] for t in page.json()["items"]]
            if (cursor := page.json()["next_cursor"]) is None:
                break
        assert sorted(seen) == sorted(ids)

        ordered = client.post(
            "/api/v1/tasks", json={"title": "t", "labels": ["q4", "docs", "a"]}, headers=ada
        )
        read = client.get(f"/api/v1/tasks/{ordered.json()['id']}", headers=ada).json()
        assert read["labels"] == ["q4", "docs", "a"]

        url = f"/api/v1/tasks/{ids[0]}"
        assert client.patch(url, json={"assignee_id": str(bob_id)}, headers=ada).status_code == 200
        assert (
            client.patch(url, json={"status": "done"}, headers={**bob, "If-Match": '"2"'}).status_code == 200
        )
        assert (
            client.patch(url, json={"status": "todo"}, headers={**bob, "If-Match": '"2"'}).status_code == 412
        )
        assert client.delete(url, headers=bob).status_code == 403
        assert client.delete(url, headers=ada).status_code == 204
