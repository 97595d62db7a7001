"""Projections: read models built from an event store, each with its own checkpoint.

A :class:`Projection` turns a batch of stored events into writes to its own tables. A
:class:`Projector` runs a module's projections as catch-up subscriptions over the store's
positions: each round reads the events after the projections' checkpoints once and applies
them to each projection *in the transaction that moves its checkpoint*, so a crash never
applies an event twice nor skips one. It wakes when an append commits in this process and
polls for appends made by others.

A rebuild builds a projection afresh from position 0 into *shadow* tables beside the live
ones, then, in one transaction, catches the shadow up to the store's head, copies it over
the live tables and moves the checkpoint: readers see the old model or the new one, never
half of one, and the server keeps serving (and projecting) throughout.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar, Self

import msgspec
from sqlalchemy import (
    Column,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    case,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from app.kernel.clock import utcnow
from app.kernel.events.store import EventStore, StoredEvent
from app.kernel.events.tables import checkpoints
from app.kernel.refresher import Refresher
from app.kernel.telemetry.metrics import PROJECTION_EVENTS, PROJECTION_LAG

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.kernel.db import Database

__all__ = ("Projection", "ProjectionStatus", "Projector")

log = logging.getLogger("tessera.events.projections")

_SHADOW = "__rebuild"


class Projection:
    """One read model. A subclass names itself, takes its tables and applies events to them.

    ``tables`` maps a name of the subclass's choosing to the Table it writes; a rebuild makes
    the same projection over shadow copies (:meth:`shadow`), so the subclass must write to
    ``self.tables[...]`` only, never to a module-level Table directly.
    """

    name: ClassVar[str]

    def __init__(self, tables: Mapping[str, Table]) -> None:
        self.tables = dict(tables)

    async def apply(self, connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        """Apply ``events`` (in position order; of every type: skip those it does not use)."""
        raise NotImplementedError

    def shadow(self) -> Self:
        """The same projection, writing to empty copies of its tables (a rebuild's)."""
        metadata = MetaData()
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.tables = {name: _shadow_of(table, metadata) for name, table in self.tables.items()}
        return copy


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    module: str
    name: str
    position: int  # the checkpoint: the last position applied
    head: int  # the store's last position
    rows: int  # rows in the projection's tables

    @property
    def lag(self) -> int:
        return self.head - self.position


class Projector:
    """Runs one module's projections over its event store."""

    def __init__(
        self,
        *,
        database: Database,
        store: EventStore,
        projections: Sequence[Projection],
        batch: int = 500,
        poll_seconds: float = 1.0,
    ) -> None:
        self._database = database
        self._projections = {p.name: p for p in projections}
        self._batch = batch
        # Catching up runs at once, every poll (another process's appends), and as soon as an
        # append commits here.
        self._refresher = Refresher(
            f"{database.module} projections", self.catch_up, interval=lambda _failing: poll_seconds
        )
        store.on_append(self._refresher.wake)

    @property
    def module(self) -> str:
        return self._database.module

    @property
    def names(self) -> list[str]:
        return list(self._projections)

    def projection(self, name: str) -> Projection:
        try:
            return self._projections[name]
        except KeyError:
            raise KeyError(f"no projection {name!r} (projections: {', '.join(self._projections)})") from None

    # -- live -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._refresher.start()

    async def stop(self) -> None:
        await self._refresher.stop()

    async def catch_up(self, name: str | None = None) -> int:
        """Apply every event the projection (or each) has not seen yet; how many events were read.

        Every projection goes in each round: one read of the store and one transaction serve
        them all, each applied in a savepoint of its own, so one that fails keeps its
        checkpoint and the others go on (its error is raised once they have caught up).
        """
        chosen = [self.projection(name)] if name else list(self._projections.values())
        return await self._catch_up({projection.name: projection for projection in chosen})

    async def status(self) -> list[ProjectionStatus]:
        async with self._database.read(scan=True) as connection:
            head = await EventStore.head(connection)
            found = dict((await connection.execute(select(checkpoints.c.name, checkpoints.c.position))).all())
            statuses = []
            for name, projection in self._projections.items():
                rows = 0
                for table in projection.tables.values():
                    rows += int(
                        (await connection.execute(select(func.count()).select_from(table))).scalar_one()
                    )
                statuses.append(
                    ProjectionStatus(
                        module=self.module, name=name, position=int(found.get(name, 0)), head=head, rows=rows
                    )
                )
        for status in statuses:
            PROJECTION_LAG.labels(self.module, status.name).set(status.lag)
        return statuses

    async def _catch_up(self, projections: Mapping[str, Projection]) -> int:
        """Apply batches to each projection (by its checkpoint's name) until none is left.

        One that fails a batch sits out the rest of the call (its checkpoint stays before
        that batch) and its error is raised once the others have caught up.
        """
        going = dict(projections)
        failure: Exception | None = None
        total = 0
        while going:
            async with self._database.transaction() as connection:
                positions = await _hold_checkpoints(connection, list(going))
                after = min(positions.values())
                events = await EventStore.read_all(connection, after=after, limit=self._batch)
                applied: dict[str, list[StoredEvent]] = {}
                for checkpoint, projection in list(going.items()):
                    position = positions[checkpoint]
                    unseen = events if position == after else [e for e in events if e.position > position]
                    if not unseen:
                        continue
                    try:
                        async with connection.begin_nested():
                            await projection.apply(connection, unseen)
                    except Exception as exc:
                        log.exception("%s projection %s failed a batch", self.module, checkpoint)
                        failure = failure or exc
                        del going[checkpoint]
                        continue
                    applied[checkpoint] = unseen
                    positions[checkpoint] = unseen[-1].position
                await _move_checkpoints(connection, {name: positions[name] for name in applied})
                head = await EventStore.head(connection)
            for checkpoint, position in positions.items():
                PROJECTION_LAG.labels(self.module, checkpoint).set(head - position)
            for checkpoint, unseen in applied.items():
                PROJECTION_EVENTS.labels(self.module, checkpoint).inc(len(unseen))
            total += len(events)
            if len(events) < self._batch:
                break
        if failure is not None:
            raise failure
        return total

    # -- rebuild ----------------------------------------------------------------------

    async def rebuild(self, name: str, *, progress: Callable[[int, int], None] | None = None) -> int:
        """Build ``name`` afresh from the whole store and swap it in; how many events it read.

        ``progress`` is told (position reached, head) after each batch.
        """
        live = self.projection(name)
        shadow = live.shadow()
        marker = f"{name}{_SHADOW}"
        async with self._database.transaction() as connection:
            await _drop(connection, shadow)  # a rebuild that died half way
            await connection.execute(delete(checkpoints).where(checkpoints.c.name == marker))
            tables = list(shadow.tables.values())
            await connection.run_sync(lambda sync: tables[0].metadata.create_all(sync, tables=tables))
        total = 0
        while True:  # the bulk, in batches, beside live traffic
            read = await self._catch_up({marker: shadow})
            total += read
            if progress is not None:
                async with self._database.read() as connection:
                    head = await EventStore.head(connection)
                    position = await _checkpoint(connection, marker)
                progress(position, head)
            if read < self._batch:
                break
        async with self._database.transaction() as connection:  # the swap: all or nothing
            # The live projector waits here meanwhile.
            position = (await _hold_checkpoints(connection, [name, marker]))[marker]
            while events := await EventStore.read_all(connection, after=position, limit=self._batch):
                await shadow.apply(connection, events)
                position = events[-1].position
                total += len(events)
            for key, table in live.tables.items():
                await connection.execute(delete(table))
                columns = [c.name for c in table.columns]
                source = shadow.tables[key]
                await connection.execute(
                    insert(table).from_select(columns, select(*(source.c[c] for c in columns)))
                )
            await _move_checkpoints(connection, {name: position})
            await connection.execute(delete(checkpoints).where(checkpoints.c.name == marker))
            await _drop(connection, shadow)
        log.info("%s projection %s rebuilt from %d events", self.module, name, total)
        return total


# -- checkpoints ----------------------------------------------------------------------


async def _hold_checkpoints(connection: AsyncConnection, names: Sequence[str]) -> dict[str, int]:
    """The checkpoint of each name, locked until this transaction ends (made at 0 if new).

    A write first: on PostgreSQL it locks the rows, on SQLite it takes the file's write lock,
    so two projectors (two workers, or a rebuild and the server) never apply the same events.
    """
    now = utcnow()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    await connection.execute(
        dialect.insert(checkpoints)
        .values([{"name": name, "position": 0, "updated_at": now} for name in names])
        .on_conflict_do_nothing()
    )
    held = await connection.execute(
        update(checkpoints)
        .where(checkpoints.c.name.in_(names))
        .values(updated_at=now)
        .returning(checkpoints.c.name, checkpoints.c.position)
    )
    return {name: int(position) for name, position in held.all()}


async def _move_checkpoints(connection: AsyncConnection, positions: Mapping[str, int]) -> None:
    if not positions:
        return
    await connection.execute(
        update(checkpoints)
        .where(checkpoints.c.name.in_(positions))
        .values(position=case(positions, value=checkpoints.c.name))
    )


async def _checkpoint(connection: AsyncConnection, name: str) -> int:
    found = await connection.execute(select(checkpoints.c.position).where(checkpoints.c.name == name))
    return int(found.scalar_one_or_none() or 0)


# -- shadow tables --------------------------------------------------------------------


def _shadow_of(table: Table, metadata: MetaData) -> Table:
    """An empty copy of ``table`` (columns, keys, indexes) under names of its own."""
    columns = [
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=c.autoincrement)
        for c in table.columns
    ]
    shadow = Table(f"{table.name}{_SHADOW}", metadata, *columns)
    for index in table.indexes:
        Index(f"{index.name}{_SHADOW}", *(shadow.c[c.name] for c in index.columns), unique=bool(index.unique))
    for constraint in table.constraints:
        if isinstance(constraint, UniqueConstraint):
            shadow.append_constraint(
                UniqueConstraint(*(c.name for c in constraint.columns), name=f"{constraint.name}{_SHADOW}")
            )
    return shadow


async def _drop(connection: AsyncConnection, projection: Projection) -> None:
    tables = list(projection.tables.values())
    await connection.run_sync(lambda sync: tables[0].metadata.drop_all(sync, tables=tables, checkfirst=True))
