"""Units of work: repositories and events travel together; events exist only if the write commits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from app.kernel.db import Database
from app.kernel.events import Outbox
from app.kernel.events.tables import metadata, outbox
from app.kernel.unit_of_work import ReadOnlyUnit, UnitOfWork, UnitsOfWork
from contracts import IntegrationEvent


class Noted(IntegrationEvent, frozen=True, kw_only=True, tag="test.Noted.v1"):
    pass


def noted() -> Noted:
    return Noted(event_id=uuid.uuid4(), occurred_at=datetime.now(UTC))


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(module="uow_test", url=make_url(f"sqlite+aiosqlite:///{tmp_path / 'u.db'}"))
    async with db.engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield db
    await db.dispose()


@pytest.fixture
def units(database: Database) -> UnitsOfWork[UnitOfWork]:
    return UnitsOfWork(
        UnitOfWork, database=database, outbox=Outbox(module="uow_test", database=database, publishes=(Noted,))
    )


async def _outbox_rows(database: Database) -> int:
    async with database.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(outbox))).scalar_one())


async def test_a_write_unit_writes_its_events_to_the_outbox_when_it_commits(
    units: UnitsOfWork[UnitOfWork], database: Database
) -> None:
    async with units.write() as unit:
        unit.publish(noted(), noted())
        assert await _outbox_rows(database) == 0  # not before the commit
    assert await _outbox_rows(database) == 2


async def test_a_write_unit_that_raises_publishes_nothing(
    units: UnitsOfWork[UnitOfWork], database: Database
) -> None:
    with pytest.raises(RuntimeError):
        async with units.write() as unit:
            unit.publish(noted())
            raise RuntimeError("the change failed")
    assert await _outbox_rows(database) == 0


async def test_a_read_unit_refuses_events(units: UnitsOfWork[UnitOfWork], database: Database) -> None:
    with pytest.raises(ReadOnlyUnit, match="Noted"):
        async with units.read() as unit:
            unit.publish(noted())
    assert await _outbox_rows(database) == 0


async def test_a_module_without_an_outbox_cannot_publish(database: Database) -> None:
    with pytest.raises(ReadOnlyUnit, match="publishes no events"):
        async with UnitsOfWork(UnitOfWork, database=database).write() as unit:
            unit.publish(noted())
    assert await _outbox_rows(database) == 0
