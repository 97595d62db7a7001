"""A scratch database for the kernel's own tests: a SQLite file, or a PostgreSQL schema of its own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url

from app.kernel.db import Database
from tests.conftest import POSTGRES_URL, drop_schemas, run_async


@asynccontextmanager
async def scratch_database(
    request: pytest.FixtureRequest, tmp_path: Path, schema: str, *tables: MetaData, pool_size: int = 10
) -> AsyncIterator[Database]:
    """``tables`` made afresh on ``request.param`` ("sqlite" or "postgres"), dropped after."""
    if request.param == "sqlite":
        database = Database(
            module=schema, url=make_url(f"sqlite+aiosqlite:///{tmp_path / 's.db'}"), pool_size=pool_size
        )
    else:
        request.getfixturevalue("postgres_url")  # skips (fails under CI) without PostgreSQL
        await asyncio.to_thread(run_async, drop_schemas(schema))
        database = Database(module=schema, url=make_url(POSTGRES_URL), pool_size=pool_size)
    async with database.engine.begin() as connection:
        if request.param != "sqlite":
            await connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        for metadata in tables:
            await connection.run_sync(metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()
        if request.param != "sqlite":
            await asyncio.to_thread(run_async, drop_schemas(schema))
