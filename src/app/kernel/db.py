"""A database per module: its own engine, its own schema, its own units of work."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, MetaData, event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from app.kernel.config import Settings

__all__ = ("NAMING_CONVENTION", "Database", "UtcDateTime", "module_database_url", "module_metadata")

# One naming scheme for every module's constraints, so that migrations name them predictably.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def module_metadata() -> MetaData:
    """The MetaData a module declares its tables on."""
    return MetaData(naming_convention=NAMING_CONVENTION)


# Where a unit of work keeps the callbacks to run once it has committed.
_AFTER_COMMIT = "tessera.after_commit"

_open_connections: ContextVar[dict[str, AsyncConnection] | None] = ContextVar(
    "tessera_open_connections", default=None
)


def module_database_url(settings: Settings, module: str) -> URL:
    """The URL a module's data lives at: its own override, the shared default, or a SQLite file."""
    override = settings.database.modules.get(module)
    raw = (override.url if override and override.url else None) or settings.database.url
    if raw:
        return make_url(raw.reveal())
    data_dir = Path(settings.data_dir).resolve()
    return make_url(f"sqlite+aiosqlite:///{data_dir / f'{module}.db'}")


class Database:
    """One module's database.

    On SQLite the module has a file of its own; on PostgreSQL a schema named after the
    module, selected through the connection's ``search_path`` so that the same table
    definitions and migrations serve both.

    Units of work are Core connections in a transaction: every module queries with
    SQLAlchemy Core, and an ORM Session cost half the hot path's time for nothing.
    """

    __slots__ = ("_writer", "engine", "module", "schema", "url")

    def __init__(self, *, module: str, url: URL, echo: bool = False, pool_size: int = 5) -> None:
        self.module = module
        self.url = url
        self.schema = module if url.get_backend_name() == "postgresql" else None
        self.engine = _create_engine(url, schema=self.schema, echo=echo, pool_size=pool_size)
        # SQLite has one writer at a time; writers queue here, in the event loop, instead
        # of spinning in SQLite's busy handler while holding a connection.
        self._writer = asyncio.Lock() if self.dialect == "sqlite" else None

    @classmethod
    def for_module(cls, settings: Settings, module: str) -> Database:
        return cls(
            module=module,
            url=module_database_url(settings, module),
            echo=settings.database.echo,
            pool_size=settings.database.pool_size,
        )

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A unit of work that may write: committed when the block ends, rolled back if it raises.

        Nested calls within one call context join the unit of work already open for
        this module, so a request that calls several services commits once.
        """
        if (joined := self._open()) is not None:
            yield joined
            return
        if self._writer is None:
            async with self._begin() as connection:
                yield connection
            return
        async with self._writer, self._begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work: a consistent view, never queued behind writers."""
        if (joined := self._open()) is not None:
            yield joined
            return
        async with self._begin() as connection:
            yield connection

    @staticmethod
    def after_commit(connection: AsyncConnection, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the unit of work ``connection`` belongs to has committed.

        Never if it rolls back. Used to wake the outbox relay the moment events exist.
        """
        connection.info.setdefault(_AFTER_COMMIT, []).append(callback)

    def _open(self) -> AsyncConnection | None:
        return (_open_connections.get() or {}).get(self.module)

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        callbacks: list[Callable[[], None]] = []
        async with self.engine.begin() as connection:
            # The pooled connection's info outlives this unit of work (and, once the
            # connection is invalidated, cannot be reached): hold it, and empty it whatever happens.
            info = connection.info
            token = _open_connections.set({**(_open_connections.get() or {}), self.module: connection})
            try:
                yield connection
            finally:
                _open_connections.reset(token)
                callbacks = info.pop(_AFTER_COMMIT, [])
        for callback in callbacks:  # reached only when the block committed
            callback()

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self.engine.connect() as connection:
            await connection.execute(select(1))

    async def dispose(self) -> None:
        await self.engine.dispose()

    def __repr__(self) -> str:
        return f"Database(module={self.module!r}, url={self.url.render_as_string(hide_password=True)!r})"


def _create_engine(url: URL, *, schema: str | None, echo: bool, pool_size: int) -> AsyncEngine:
    # A pool as large as the concurrency it serves: opening connections per request
    # (a thread each on aiosqlite, a TLS context each on asyncpg) dominated under load.
    options: dict[str, Any] = {"echo": echo, "pool_size": pool_size, "max_overflow": pool_size}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    options["pool_pre_ping"] = True  # a server may drop idle connections; a file cannot
    if schema is not None:
        options["connect_args"] = {"server_settings": {"search_path": schema}}
    return create_async_engine(url, **options)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits for the lock instead of failing.
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "busy_timeout=5000", "foreign_keys=ON", "synchronous=NORMAL"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite (which keeps none) too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Tessera stores UTC-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
