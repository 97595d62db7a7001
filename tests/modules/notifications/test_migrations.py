"""The notifications schema: migrated from empty, it is what tables.py declares.

Its event tables (an inbox only: it publishes nothing) are checked for every module in
``tests/kernel/test_event_tables.py``.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect

from app.composition.container import Composition
from modules.notifications.tables import metadata, notifications


def _ours(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """This module's tables only: its inbox is declared by the kernel."""
    table = name if type_ == "table" else parent_names.get("table_name")
    return type_ == "schema" or table in metadata.tables


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": _ours})
    differences: list[Any] = compare_metadata(context, metadata)
    return differences


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_the_migrated_schema_is_the_declared_one(composed: Composition) -> None:
    async with composed.module("notifications").database.engine.connect() as connection:
        tables = await connection.run_sync(_tables)
        differences = await connection.run_sync(_differences)
    assert notifications.name in tables
    assert differences == []


async def test_the_migration_goes_down_and_up_again(composed: Composition) -> None:
    migrations = composed.module("notifications").migrations
    await migrations.downgrade()
    async with composed.module("notifications").database.engine.connect() as connection:
        assert await connection.run_sync(_tables) <= {"alembic_version_notifications", "tessera_deployment"}
    await migrations.upgrade()
    assert (await migrations.state()).is_current
