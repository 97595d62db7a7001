"""Each module's data is its own at run time, not only by convention.

PostgreSQL (``database.module_roles``): each module works as a role of its own that owns its
schema; reading another module's table is a permission error, not data. Roles are
cluster-wide and the server is shared: this test's roles carry a prefix of their own and are
dropped at the end. SQLite: each module's connections have its own file open, and only it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from app.composition.catalog import MODULES
from app.composition.container import Composition, compose
from app.composition.web import create_app
from app.kernel.config import Settings
from tests.conftest import bearer, log_in, make_settings, register, run_async

MODULE_NAMES = [m.name for m in MODULES]


@pytest.fixture
def with_roles(postgres_settings: Settings, role_prefix: str) -> Settings:
    database = msgspec.structs.replace(postgres_settings.database, module_roles=True, role_prefix=role_prefix)
    return msgspec.structs.replace(postgres_settings, database=database)


async def _upgraded(settings: Settings) -> Composition:
    composition = compose(settings)
    await composition.upgrade()
    return composition


def _by_module(composition: Composition) -> dict[str, Any]:
    return {m.name: m.database for m in composition.modules}


@pytest.mark.postgres
def test_a_module_s_role_reads_its_own_schema_and_gets_a_permission_error_for_another(
    with_roles: Settings,
) -> None:
    prefix = with_roles.database.role_prefix

    async def check() -> None:
        composition = await _upgraded(with_roles)
        try:
            await composition.upgrade()  # again: nothing to do, nothing refused
            tasks, identity = _by_module(composition)["tasks"], _by_module(composition)["identity"]
            async with tasks.read() as connection:
                assert (
                    await connection.execute(text("SELECT current_user"))
                ).scalar_one() == f"{prefix}tasks"
                assert (await connection.execute(text("SELECT count(*) FROM tasks"))).scalar_one() == 0
            with pytest.raises(ProgrammingError, match="permission denied for schema identity"):
                async with tasks.read() as connection:
                    await connection.execute(text("SELECT email FROM identity.users"))
            with pytest.raises(ProgrammingError, match="permission denied for schema tasks"):
                async with identity.transaction() as connection:
                    await connection.execute(text("DELETE FROM tasks.tasks"))
            owners = await _owners(composition)
            assert owners == {m: {f"{prefix}{m}"} for m in MODULE_NAMES}
        finally:
            await composition.aclose()

    run_async(check())
    # ... and the application works as those roles, end to end.
    with TestClient(app=create_app(compose(with_roles))) as client:
        ada = register(client)
        token = log_in(client, ada["email"])["access_token"]
        created = client.post("/api/v1/tasks", json={"title": "Owned"}, headers=bearer(token))
        assert created.status_code == 201, created.text
        assert client.get(f"/api/v1/tasks/{created.json()['id']}", headers=bearer(token)).status_code == 200


async def _owners(composition: Composition) -> dict[str, set[str]]:
    """Who owns each module's schema and the tables in it."""
    owners: dict[str, set[str]] = {}
    for name, database in _by_module(composition).items():
        async with database.read() as connection:
            found = await connection.execute(
                text(
                    "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = :s "
                    "UNION SELECT tableowner FROM pg_tables WHERE schemaname = :s"
                ),
                {"s": name},
            )
            owners[name] = {row[0] for row in found}
    return owners


@pytest.mark.postgres
def test_turning_roles_on_hands_a_deployment_s_existing_tables_to_them(
    with_roles: Settings, postgres_settings: Settings
) -> None:
    async def check() -> None:
        before = await _upgraded(postgres_settings)  # as the URL's user, as before roles existed
        await before.aclose()
        composition = await _upgraded(with_roles)
        try:
            prefix = with_roles.database.role_prefix
            assert await _owners(composition) == {m: {f"{prefix}{m}"} for m in MODULE_NAMES}
            migrations = next(m.migrations for m in composition.modules if m.name == "tasks")
            await migrations.downgrade("-1")  # the module's own history still runs both ways, as its role
            await migrations.upgrade()
            assert (await migrations.current()) == migrations.head()
        finally:
            await composition.aclose()

    run_async(check())


def test_on_sqlite_each_module_opens_its_own_file_and_no_other(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")

    def files(listed: Any) -> list[str]:  # (a connection's "temp" schema is its own, in memory)
        return [row[2] for row in listed if row[1] != "temp"]

    async def check() -> dict[str, list[list[Any]]]:
        composition = await _upgraded(settings)
        try:
            opened = {}
            for name, database in _by_module(composition).items():
                opened_by: list[list[str]] = []
                async with database.read() as connection:  # a reader, on the loop's thread
                    opened_by.append(files(await connection.exec_driver_sql("PRAGMA database_list")))
                async with database.transaction() as connection:  # a writer, on its own thread
                    opened_by.append(files(await connection.exec_driver_sql("PRAGMA database_list")))
                opened[name] = opened_by
            return opened
        finally:
            await composition.aclose()

    opened = run_async(check())
    data = (tmp_path / "data").resolve()
    assert opened == {m: [[str(data / f"{m}.db")]] * 2 for m in MODULE_NAMES}
