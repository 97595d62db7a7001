"""Units of work: one transaction of a module's database, its repositories, and its events.

cosmicpython's pattern, on SQLAlchemy Core connections. A module subclasses
:class:`UnitOfWork` beside its repositories, adding one attribute per repository; its
service opens units through :class:`UnitsOfWork`::

    async with self._units.write() as unit:
        await unit.tasks.add(task)
        unit.publish(*events_of_creation(task))

Events exist only inside a write unit: they are collected as the work goes, and written to
the module's outbox in the same transaction, just before it commits. A read unit refuses
them. An event consumer's handler is handed the unit the inbox opened for the delivery, so
the effect and the inbox row commit together, in sight.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.kernel.db import Database
    from app.kernel.events.outbox import Outbox
    from contracts import IntegrationEvent

__all__ = ("ReadOnlyUnit", "UnitOfWork", "UnitsOfWork")


class ReadOnlyUnit(Exception):
    """Events were published in a read unit of work: only a write unit may publish."""


class UnitOfWork:
    """One transaction of one module's database. Subclasses add the module's repositories."""

    def __init__(self, connection: AsyncConnection, *, writable: bool) -> None:
        self.connection = connection
        self.writable = writable
        self.events: list[IntegrationEvent] = []

    def publish(self, *events: IntegrationEvent) -> None:
        """Publish ``events`` if, and when, this unit commits."""
        if not self.writable:
            raise ReadOnlyUnit(f"{[type(e).__name__ for e in events]} published in a read unit of work")
        self.events.extend(events)


U = TypeVar("U", bound=UnitOfWork)


class UnitsOfWork(Generic[U]):
    """Opens one module's units of work on its database; write units publish to its outbox."""

    __slots__ = ("_database", "_outbox", "_unit")

    def __init__(self, unit: Callable[..., U], *, database: Database, outbox: Outbox | None = None) -> None:
        self._unit = unit
        self._database = database
        self._outbox = outbox

    @asynccontextmanager
    async def read(self) -> AsyncIterator[U]:
        """A consistent view, never queued behind writers; it publishes nothing."""
        async with self._database.read() as connection:
            yield self._unit(connection, writable=False)

    async def expunge(self, table: str) -> None:
        """Leave no older copy of ``table``'s deleted rows in the files (after an erasure commits)."""
        await self._database.expunge(table)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[U]:
        """Committed with its events when the block ends; rolled back, events and all, if it raises."""
        async with self._database.transaction() as connection:
            unit = self._unit(connection, writable=True)
            yield unit
            if unit.events:
                if self._outbox is None:
                    raise ReadOnlyUnit(f"module {self._database.module} publishes no events")
                await self._outbox.append(connection, *unit.events)
