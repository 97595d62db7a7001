"""A database per module: its own engine, its own schema, its own units of work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Integer, MetaData, event, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import TypeDecorator

from app.kernel.config import ConfigError, Settings
from app.kernel.inline_sqlite import inline_connector
from app.kernel.telemetry.metrics import DB_POOL_IN_USE, DB_POOL_SIZE, DB_POOL_TIMEOUTS
from app.kernel.telemetry.tracing import trace_queries
from contracts import DependencyUnavailable

__all__ = (
    "NAMING_CONVENTION",
    "Database",
    "UtcDateTime",
    "module_database_url",
    "module_metadata",
    "pool_sizes",
)

log = logging.getLogger("tessera.db")

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


def open_units() -> list[str]:
    """The modules whose unit of work is open in this call context, by name."""
    return sorted(_open_connections.get() or {})


def module_database_url(settings: Settings, module: str) -> URL:
    """The URL a module's data lives at: its own override, the shared default, or a SQLite file."""
    override = settings.database.modules.get(module)
    raw = (override.url if override and override.url else None) or settings.database.url
    if raw:
        return make_url(raw.reveal())
    data_dir = Path(settings.data_dir).resolve()
    return make_url(f"sqlite+aiosqlite:///{data_dir / f'{module}.db'}")


def pool_sizes(settings: Settings, modules: Sequence[str], *, processes: int) -> dict[str, int]:
    """How many connections each of this process's modules may hold.

    A SQLite file has no server to exhaust: ``database.pool_size`` each. Modules on
    PostgreSQL share ``database.max_connections`` with every other process of the
    deployment: ``processes`` counts each worker of each group that runs modules.
    """
    cap = settings.database.pool_size
    on_server = [m for m in modules if module_database_url(settings, m).get_backend_name() == "postgresql"]
    if not on_server:
        return dict.fromkeys(modules, cap)
    budget = settings.database.max_connections
    share = budget // processes // len(on_server)
    if share < 1:
        raise ConfigError(
            f"database.max_connections: {budget} cannot give a connection to each of "
            f"{len(on_server)} modules in {processes} processes (workers times groups); "
            f"it needs at least {processes * len(on_server)}"
        )
    return {m: min(cap, share) if m in on_server else cap for m in modules}


SQLITE_WRITE_CONNECTIONS = 2  # a SQLite file's writer, and one whole-table read beside it


class Database:
    """One module's database.

    On SQLite the module has a file of its own; on PostgreSQL a schema named after the
    module, selected through the connection's ``search_path`` so that the same table
    definitions and migrations serve both.

    Units of work are Core connections in a transaction: every module queries with
    SQLAlchemy Core, and an ORM Session cost half the hot path's time for nothing.

    On SQLite, reads and writes take different connections: read units run on the event
    loop's thread (``app.kernel.inline_sqlite``; ``query_only``, so a read unit cannot write),
    write units on aiosqlite's threads, one writer at a time. WAL keeps readers and the
    writer out of each other's way, so a slow commit never stalls the loop.

    The pool never grows past ``pool_size``: a unit of work that finds no connection free
    within ``pool_timeout`` seconds, or whose database refuses a new one, raises
    :class:`~contracts.DependencyUnavailable` (503 with ``Retry-After`` at the edge).
    """

    __slots__ = (
        "_queue",
        "_reads",
        "_timeout",
        "_writer",
        "connections",
        "engine",
        "module",
        "pool_size",
        "role",
        "schema",
        "url",
        "waiting",
    )

    def __init__(
        self,
        *,
        module: str,
        url: URL,
        echo: bool = False,
        pool_size: int = 5,
        pool_timeout: float = 30.0,
        role: str | None = None,
    ) -> None:
        self.module = module
        self.url = url
        self.pool_size = pool_size
        self.schema = module if url.get_backend_name() == "postgresql" else None
        # PostgreSQL: the role the module works as (owner of its schema, nothing else); None: the URL's user.
        self.role = role if self.schema is not None else None
        on_file = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
        writers = min(pool_size, SQLITE_WRITE_CONNECTIONS) if on_file else pool_size
        # The most connections the module holds: its pool, or on a SQLite file its two pools.
        self.connections = writers + pool_size if on_file else pool_size
        self.engine = _create_engine(
            url,
            schema=self.schema,
            echo=echo,
            # A SQLite file's writes take one connection at a time (the lock below), and a
            # whole-table read one more beside it: more would be idle aiosqlite threads.
            pool_size=writers,
            pool_timeout=pool_timeout,
            application_name=f"tessera:{module}",
            role=self.role,
        )
        self._reads = (
            _inline_reader(url, echo=echo, pool_size=pool_size, pool_timeout=pool_timeout)
            if on_file
            else self.engine
        )
        # SQLite has one writer at a time; writers queue here, in the event loop, instead
        # of spinning in SQLite's busy handler while holding a connection.
        self._writer = asyncio.Lock() if self.dialect == "sqlite" else None
        # Units of work wait for a server's connection, or a SQLite file's reader, first come,
        # first served. SQLAlchemy's asyncio pool lets a newcomer take a connection handed
        # back while the waiter woken for it is still on its way, and that waiter queues
        # again at the back: 64 requests on 16 connections had a p99 25 times their median.
        # (A SQLite file's writers queue on the lock above.)
        self._queue = asyncio.Semaphore(pool_size)
        self._timeout = pool_timeout
        self.waiting = 0  # units of work waiting for a connection now (on a server)
        DB_POOL_SIZE.labels(module).set(self.connections)
        in_use = DB_POOL_IN_USE.labels(module)
        for engine in {self.engine, self._reads}:
            trace_queries(engine.sync_engine)
            event.listen(engine.sync_engine, "checkout", lambda *_: in_use.inc())
            event.listen(engine.sync_engine, "checkin", lambda *_: in_use.dec())

    @classmethod
    def for_module(cls, settings: Settings, module: str, *, pool_size: int | None = None) -> Database:
        return cls(
            module=module,
            url=module_database_url(settings, module),
            echo=settings.database.echo,
            pool_size=pool_size or settings.database.pool_size,
            pool_timeout=settings.database.pool_timeout_seconds,
            role=settings.database.role_prefix + module if settings.database.module_roles else None,
        )

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def file(self) -> Path | None:
        """The SQLite file the module's data is in; None on a server or in memory."""
        if self.dialect != "sqlite" or self.url.database in (None, "", ":memory:"):
            return None
        return Path(self.url.database)

    def exists(self) -> bool:
        """Whether there is a database to open: a SQLite file may not have been made yet."""
        return self.file is None or self.file.is_file()

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
            async with self._begin(self.engine) as connection:
                yield connection
            return
        async with self._writer, self._begin(self.engine) as connection:
            yield connection

    @asynccontextmanager
    async def read(self, *, scan: bool = False) -> AsyncIterator[AsyncConnection]:
        """A read-only unit of work: a consistent view, never queued behind writers.

        ``scan``: a read that may go through a whole table (the outbox's counts, say). On
        SQLite it runs on a connection's own thread, as writes do, so that it never holds
        the event loop for as long as the table is big.
        """
        if (joined := self._open()) is not None:
            yield joined
            return
        async with self._begin(self.engine if scan else self._reads) as connection:
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
    async def _begin(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        callbacks: list[Callable[[], None]] = []
        async with self._connect(engine) as connection, connection.begin():
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

    @asynccontextmanager
    async def _connect(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        """A pooled connection, or DependencyUnavailable when none comes in time."""
        if engine is not self._reads:  # a SQLite file's writer or whole-table read
            async with self._pooled(engine) as connection:
                yield connection
            return
        if self._queue.locked():  # wait in line (wait_for costs a task: only when waiting)
            self.waiting += 1
            try:
                await asyncio.wait_for(self._queue.acquire(), self._timeout)
            except TimeoutError as exc:
                raise self._unavailable(exc) from exc
            finally:
                self.waiting -= 1
        else:
            await self._queue.acquire()  # free: taken at once
        try:
            async with self._pooled(engine) as connection:
                yield connection
        finally:
            self._queue.release()

    @asynccontextmanager
    async def _pooled(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        try:
            connection = await engine.connect()
        except (sa_exc.TimeoutError, sa_exc.DBAPIError, OSError) as exc:
            raise self._unavailable(exc) from exc
        try:
            yield connection
        finally:
            await connection.close()

    def _unavailable(self, exc: BaseException) -> DependencyUnavailable:
        if isinstance(exc, sa_exc.TimeoutError | TimeoutError):
            DB_POOL_TIMEOUTS.labels(self.module).inc()
        log.warning("%s database: no connection (%s)", self.module, type(exc).__name__)
        return DependencyUnavailable(f"the {self.module} database is busy or unreachable")

    async def server_connection_limit(self) -> int | None:
        """How many connections the server accepts from ordinary roles; None for a SQLite file."""
        if self.dialect != "postgresql":
            return None
        settings = ("max_connections", "superuser_reserved_connections", "reserved_connections")
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(
                        *(func.coalesce(func.current_setting(s, True), "0").cast(Integer) for s in settings)
                    )
                )
            ).one()
        return int(row[0]) - int(row[1]) - int(row[2])

    async def ping(self) -> None:
        """Raise unless the database answers."""
        async with self._reads.connect() as connection:
            await connection.execute(select(1))

    async def expunge(self, table: str) -> None:
        """Leave no older copy of ``table``'s deleted rows in the database's files.

        SQLite: deleted bytes are overwritten in place (``secure_delete``); this checkpoints the
        write-ahead log, which still holds the pages as they were, and truncates it.
        PostgreSQL: ``VACUUM`` of the table, so its dead row versions are gone from its pages.
        """
        async with self.engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "sqlite":
                await autocommit.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                await autocommit.exec_driver_sql(f'VACUUM "{table}"')

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._reads is not self.engine:
            await self._reads.dispose()

    def __repr__(self) -> str:
        return f"Database(module={self.module!r}, url={self.url.render_as_string(hide_password=True)!r})"


def _create_engine(
    url: URL,
    *,
    schema: str | None,
    echo: bool,
    pool_size: int,
    pool_timeout: float,
    application_name: str,
    role: str | None = None,
) -> AsyncEngine:
    # A fixed pool as large as the concurrency it serves: opening connections per request
    # (a thread each on aiosqlite, a TLS context each on asyncpg) dominated under load, and
    # overflow beyond it is what exhausted PostgreSQL's max_connections.
    options: dict[str, Any] = {
        "echo": echo,
        "pool_size": pool_size,
        "max_overflow": 0,
        "pool_timeout": pool_timeout,
    }
    if url.get_backend_name() == "sqlite":
        engine = create_async_engine(url, **options)
        event.listen(engine.sync_engine, "do_connect", _make_room_for_the_file)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    options["pool_pre_ping"] = True  # a server may drop idle connections; a file cannot
    server_settings = {"application_name": application_name}  # who holds what, in pg_stat_activity
    if schema is not None:
        server_settings["search_path"] = schema
    if role is not None:  # SET ROLE from the first statement on: the module's privileges, no more
        server_settings["role"] = role
    options["connect_args"] = {"server_settings": server_settings}
    return create_async_engine(url, **options)


def _inline_reader(url: URL, *, echo: bool, pool_size: int, pool_timeout: float) -> AsyncEngine:
    """Read units' engine on a SQLite file: connections that answer on the loop's thread."""
    assert url.database is not None
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        async_creator=inline_connector(url.database, on_connect=_make_room_for),
    )
    event.listen(engine.sync_engine, "connect", _tune_sqlite_reader)
    return engine


def _make_room_for_the_file(_dialect: Any, _record: Any, cargs: list[Any], _cparams: Any) -> None:
    path = cargs[0] if cargs else None
    if isinstance(path, str) and path != ":memory:" and not path.startswith("file:"):
        _make_room_for(path)


def _make_room_for(path: str) -> None:
    # The data dir is made when a database is first opened, not when an engine is built:
    # a command that only looks (serve refusing an unmigrated dir) leaves nothing behind.
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; busy_timeout waits for the lock instead of failing;
    # secure_delete overwrites what is deleted, so erased personal data leaves no bytes behind.
    _pragmas(
        dbapi_connection,
        "journal_mode=WAL",
        "busy_timeout=5000",
        "foreign_keys=ON",
        "synchronous=NORMAL",
        "secure_delete=ON",
    )


def _tune_sqlite_reader(dbapi_connection: Any, _record: Any) -> None:
    # A reader waits on the loop's thread: in WAL it never waits for the writer, and the
    # rare lock it may meet (a checkpoint resetting the log) is waited for briefly at most.
    _pragmas(dbapi_connection, "busy_timeout=250", "journal_mode=WAL", "query_only=ON")


def _pragmas(dbapi_connection: Any, *pragmas: str) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in pragmas:
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
