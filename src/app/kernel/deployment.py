"""Which deployment a module's database belongs to: an id recorded at the first `db upgrade`.

Several deployments may share one broker (a laptop's and CI's, staging and a demo). Their
events must never meet, so the default events namespace is derived from this id: a
fresh data dir (or a fresh database) is a new deployment with streams and queues of its
own. Every module's database records the same id, so every process of a split derives
the same namespace.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from sqlalchemy import Column, MetaData, Table, Uuid, insert, inspect, select

from app.kernel.clock import utcnow
from app.kernel.db import NAMING_CONVENTION, UtcDateTime

if TYPE_CHECKING:
    from app.kernel.db import Database

__all__ = ("events_namespace", "record_deployment", "recorded_deployment")

# Kernel bookkeeping beside the module's tables, like Alembic's version table.
_metadata = MetaData(naming_convention=NAMING_CONVENTION)
deployment = Table(
    "tessera_deployment",
    _metadata,
    Column("id", Uuid, primary_key=True),
    Column("recorded_at", UtcDateTime, nullable=False),
)


def events_namespace(deployment_id: uuid.UUID) -> str:
    """The events namespace of a deployment that configures none."""
    return f"tessera_{deployment_id.hex[:12]}"


async def recorded_deployment(database: Database) -> uuid.UUID | None:
    """The deployment id recorded in ``database``; None before the first `db upgrade`."""
    if not database.exists():
        return None
    async with database.engine.connect() as connection:
        if not await connection.run_sync(lambda c: inspect(c).has_table(deployment.name)):
            return None
        return (await connection.execute(select(deployment.c.id))).scalar_one_or_none()


async def record_deployment(database: Database, deployment_id: uuid.UUID) -> None:
    """Record ``deployment_id`` in ``database`` unless it already holds one."""
    async with database.engine.begin() as connection:
        await connection.run_sync(_metadata.create_all, checkfirst=True)
        if (await connection.execute(select(deployment.c.id))).first() is None:
            await connection.execute(insert(deployment).values(id=deployment_id, recorded_at=utcnow()))
