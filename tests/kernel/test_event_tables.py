"""Each module keeps the event tables it uses, as the kernel declares them, on SQLite and PostgreSQL.

A module that publishes keeps an outbox; one that consumes keeps an inbox; nothing else.
The tables are made by frozen migration steps (one per version), so what the steps build
must stay what ``app.kernel.events.tables`` declares and the relay and inbox use.
"""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect

from app.composition.container import compose
from app.kernel.config import Settings
from app.kernel.events.tables import inbox, metadata, outbox

EVENT_TABLES = {outbox.name, inbox.name}


def _event_tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) & EVENT_TABLES


def _differences(connection: Connection, kept: set[str]) -> list[Any]:
    """What alembic finds between the kept tables and their declaration (nothing, when they agree)."""

    def ours(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
        table = name if type_ == "table" else parent_names.get("table_name")
        return type_ == "schema" or table in kept

    declared = MetaData()
    for name in kept:
        metadata.tables[name].to_metadata(declared)
    context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
    differences: list[Any] = compare_metadata(context, declared)
    return differences


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    return settings if request.param == "sqlite" else request.getfixturevalue("postgres_settings")


async def test_each_module_keeps_the_event_tables_it_uses_as_declared(database_settings: Settings) -> None:
    composition = compose(database_settings)
    try:
        await composition.upgrade()
        for composed in composition.modules:
            module = composed.module
            expected = {outbox.name} if module.publishes else set()
            expected |= {inbox.name} if module.consumes else set()
            async with composed.database.engine.connect() as connection:
                kept = await connection.run_sync(_event_tables)
                differences = await connection.run_sync(_differences, kept)
            assert (module.name, kept) == (module.name, expected)
            assert (module.name, differences) == (module.name, [])
    finally:
        await composition.aclose()


async def test_every_module_goes_down_to_nothing_and_up_again(database_settings: Settings) -> None:
    composition = compose(database_settings)
    try:
        await composition.upgrade()
        for composed in composition.modules:
            await composed.migrations.downgrade()
            async with composed.database.engine.connect() as connection:
                assert await connection.run_sync(_event_tables) == set()
            await composed.migrations.upgrade()
            assert (await composed.migrations.state()).is_current
    finally:
        await composition.aclose()
