"""A database per module, units of work, and per-module migrations on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from app.composition.container import compose
from app.kernel.config import Settings
from app.kernel.db import Database
from modules.identity.tables import users

pytestmark = pytest.mark.asyncio


async def test_each_module_gets_its_own_sqlite_file(migrated: Settings) -> None:
    data_dir = Path(migrated.data_dir)
    assert sorted(p.name for p in data_dir.glob("*.db")) == [
        "accounts.db",
        "activity.db",
        "identity.db",
        "notifications.db",
        "tasks.db",
    ]


async def test_upgrade_is_idempotent_and_reports_the_head(settings: Settings) -> None:
    composition = compose(settings)
    try:
        assert [s.current for s in await composition.migration_states()] == [None] * 5
        await composition.upgrade()
        await composition.upgrade()
        states = await composition.migration_states()
        assert all(s.is_current and s.current == s.head for s in states)
    finally:
        await composition.aclose()


async def test_each_module_has_its_own_version_table(migrated: Settings) -> None:
    composition = compose(migrated)
    try:
        database = composition.module("identity").database
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: c.dialect.get_table_names(c))
        assert "alembic_version_identity" in tables
        assert "alembic_version" not in tables
    finally:
        await composition.aclose()


async def _count_users(database: Database) -> int:
    async with database.read() as connection:
        return int((await connection.execute(select(func.count()).select_from(users))).scalar_one())


def _user_row(email: str) -> dict[str, object]:
    import uuid
    from datetime import UTC, datetime

    return {
        "id": uuid.uuid4(),
        "email": email,
        "email_key": email,
        "display_name": "X",
        "password_hash": "x",
        "active": True,
        "created_at": datetime.now(UTC),
    }


async def test_a_unit_of_work_that_fails_leaves_nothing_behind(migrated: Settings) -> None:
    composition = compose(migrated)
    database = composition.module("identity").database
    try:
        with pytest.raises(RuntimeError):
            async with database.transaction() as connection:
                await connection.execute(insert(users).values(**_user_row("a@example.com")))
                raise RuntimeError("boom")
        assert await _count_users(database) == 0
    finally:
        await composition.aclose()


async def test_nested_units_of_work_commit_once_as_one(migrated: Settings) -> None:
    composition = compose(migrated)
    database = composition.module("identity").database
    try:
        with pytest.raises(RuntimeError):
            async with database.transaction() as outer:
                await outer.execute(insert(users).values(**_user_row("a@example.com")))
                async with database.transaction() as inner:
                    assert inner is outer
                    await inner.execute(insert(users).values(**_user_row("b@example.com")))
                raise RuntimeError("the outer unit fails after the inner one finished")
        assert await _count_users(database) == 0
    finally:
        await composition.aclose()


async def test_sqlite_writers_queue_while_readers_go_on(migrated: Settings) -> None:
    composition = compose(migrated)
    database = composition.module("identity").database
    order: list[str] = []
    writer_inside = asyncio.Event()

    async def writer(name: str, email: str) -> None:
        async with database.transaction() as connection:
            order.append(f"{name} in")
            writer_inside.set()
            await connection.execute(insert(users).values(**_user_row(email)))
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    async def reader() -> None:
        await writer_inside.wait()
        assert await _count_users(database) in (0, 1)  # not queued behind the writers
        order.append("read")

    try:
        await asyncio.gather(writer("w1", "a@example.com"), writer("w2", "b@example.com"), reader())
        assert order.index("w1 out") < order.index("w2 in"), order
        assert order.index("read") < order.index("w1 out"), order
        assert await _count_users(database) == 2
    finally:
        await composition.aclose()


async def test_a_slow_sqlite_write_never_stalls_the_reads_beside_it(migrated: Settings) -> None:
    # Reads answer on the event loop's thread; a write runs on its connection's own thread.
    # Here SQLite itself takes 0.5 s inside the write (a function that blocks its thread):
    # the loop must stay free, and reads must be answered all the while.
    composition = compose(migrated)
    database = composition.module("identity").database
    event.listen(database.engine.sync_engine, "connect", _with_a_blocking_function)
    write_done = asyncio.Event()
    reads_during_write = 0
    longest_stall = 0.0

    async def slow_write() -> None:
        async with database.transaction() as connection:
            await connection.execute(insert(users).values(**_user_row("slow@example.com")))
            await connection.execute(text("SELECT block_for(0.5)"))
        write_done.set()

    async def read_meanwhile() -> None:
        nonlocal reads_during_write, longest_stall
        while not write_done.is_set():
            began = time.perf_counter()
            assert await _count_users(database) in (0, 1)  # before the commit, or just after it
            await asyncio.sleep(0)
            longest_stall = max(longest_stall, time.perf_counter() - began)
            reads_during_write += not write_done.is_set()

    try:
        await asyncio.gather(slow_write(), read_meanwhile())
        assert reads_during_write >= 10
        assert longest_stall < 0.25, f"a read waited {longest_stall:.3f} s behind the write"
        assert await _count_users(database) == 1
    finally:
        await composition.aclose()


async def test_a_scan_of_a_whole_table_runs_off_the_loop(migrated: Settings) -> None:
    # The outbox's counts read every row it keeps; SQLite takes 0.5 s here, on the scan's thread.
    composition = compose(migrated)
    database = composition.module("identity").database
    event.listen(Engine, "connect", _with_a_blocking_function)  # on every connection, the loop's too
    scanned = asyncio.Event()
    ticks = 0

    async def scan() -> None:
        async with database.read(scan=True) as connection:
            await connection.execute(text("SELECT block_for(0.5)"))
        scanned.set()

    async def tick() -> None:
        nonlocal ticks
        while not scanned.is_set():
            await asyncio.sleep(0.01)
            ticks += 1

    try:
        await asyncio.gather(scan(), tick())
        assert ticks >= 10  # the loop went on while SQLite scanned
    finally:
        event.remove(Engine, "connect", _with_a_blocking_function)
        await composition.aclose()


def _with_a_blocking_function(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.create_function("block_for", 1, lambda seconds: time.sleep(seconds))


async def test_a_read_unit_of_work_cannot_write(migrated: Settings) -> None:
    composition = compose(migrated)
    database = composition.module("identity").database
    try:
        with pytest.raises(DBAPIError, match=r"readonly|read-only|query_only"):
            async with database.read() as connection:
                await connection.execute(insert(users).values(**_user_row("sneaky@example.com")))
        assert await _count_users(database) == 0
    finally:
        await composition.aclose()


@pytest.mark.postgres
async def test_postgres_migrates_from_empty_into_the_module_schema(postgres_settings: Settings) -> None:
    composition = compose(postgres_settings)
    database = composition.module("identity").database
    try:
        assert database.schema == "identity"
        await composition.upgrade()
        await composition.upgrade()
        assert all(s.is_current for s in await composition.migration_states())
        async with database.engine.connect() as connection:
            tables = set(
                (
                    await connection.execute(
                        text(
                            "select table_name from information_schema.tables where table_schema = 'identity'"
                        )
                    )
                ).scalars()
            )
        assert {"users", "refresh_tokens", "alembic_version_identity"} <= tables
        assert await _count_users(database) == 0
    finally:
        await composition.aclose()


@pytest.mark.postgres
async def test_postgres_migrations_go_down_and_up_again(postgres_settings: Settings) -> None:
    composition = compose(postgres_settings)
    migrations = composition.module("identity").migrations
    try:
        await migrations.upgrade()
        await migrations.downgrade("base")
        assert await migrations.current() is None
        await migrations.upgrade()
        assert await migrations.current() == migrations.head()
    finally:
        await composition.aclose()


async def test_a_sqlite_file_holds_one_writer_and_a_scan_beside_its_readers_and_says_so(
    settings: Settings,
) -> None:
    from prometheus_client import REGISTRY
    from sqlalchemy.engine import make_url

    path = Path(settings.data_dir) / "pools.db"
    database = Database(module="pools", url=make_url(f"sqlite+aiosqlite:///{path}"), pool_size=16)
    try:
        # Writes queue for one connection; 14 more writer threads would only idle.
        assert database.engine.pool.size() == 2  # type: ignore[attr-defined]
        assert database.connections == 18
        assert REGISTRY.get_sample_value("tessera_db_pool_size", {"module": "pools"}) == 18
    finally:
        await database.dispose()


@pytest.mark.postgres
async def test_units_of_work_get_a_servers_connections_in_the_order_they_asked(postgres_url: str) -> None:
    """A newcomer never takes the connection a waiting unit of work was woken for.

    SQLAlchemy's asyncio pool would let it: the woken waiter then queues again at the back,
    and under load a few requests wait many rounds (a p99 25 times the median).
    """
    from sqlalchemy.engine import make_url

    database = Database(module="fairness", url=make_url(postgres_url), pool_size=1, pool_timeout=5)
    order: list[str] = []
    held, release = asyncio.Event(), asyncio.Event()

    async def unit(name: str) -> None:
        async with database.read() as connection:
            order.append(name)
            await connection.execute(text("SELECT 1"))

    async def holder() -> None:
        async with database.read():
            held.set()
            await release.wait()

    arrivals: list[asyncio.Task[None]] = []

    def newcomer_arrives(*_: object) -> None:  # the moment the connection goes back to the pool
        if not arrivals:
            arrivals.append(asyncio.get_running_loop().create_task(unit("newcomer")))

    event.listen(database.engine.sync_engine, "checkin", newcomer_arrives)
    try:
        holding = asyncio.create_task(holder())
        await held.wait()
        waiting = asyncio.create_task(unit("waited"))
        while not database.waiting:  # noqa: ASYNC110 (queued for the one connection: no event says so)
            await asyncio.sleep(0.001)
        release.set()
        await asyncio.gather(holding, waiting)
        await asyncio.gather(*arrivals)
        assert order == ["waited", "newcomer"]
    finally:
        await database.dispose()


async def test_a_unit_of_work_that_cannot_get_a_connection_in_time_is_unavailable(settings: Settings) -> None:
    from sqlalchemy.engine import make_url

    from contracts import DependencyUnavailable

    database = Database(
        module="busy",
        url=make_url(f"sqlite+aiosqlite:///{Path(settings.data_dir) / 'busy.db'}"),
        pool_size=1,
        pool_timeout=0.1,
    )
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold_the_only_connection() -> None:
        async with database.read():
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_only_connection())
    await held.wait()
    try:
        with pytest.raises(DependencyUnavailable) as refused:
            async with database.read():
                pass
        assert refused.value.status == 503
        assert refused.value.retry_after >= 1
    finally:
        release.set()
        await holder
    async with database.read() as connection:  # free again: the next one gets it
        assert (await connection.execute(select(1))).scalar_one() == 1
    await database.dispose()


@pytest.mark.parametrize(
    ("workers", "groups", "expected"),
    [
        (1, 0, dict.fromkeys(("identity", "tasks", "notifications", "activity", "accounts"), 16)),  # 80 / 5
        (2, 0, dict.fromkeys(("identity", "tasks", "notifications", "activity", "accounts"), 8)),  # / 2 / 5
        (2, 4, {"tasks": 10}),  # 80 / (2 workers x 4 groups with modules); the gateway holds none
    ],
)
async def test_postgres_pools_share_the_connection_budget(
    settings: Settings, workers: int, groups: int, expected: dict[str, int]
) -> None:
    """80 connections (the default) across every worker of every group that holds modules."""
    import msgspec

    from app.kernel.config import GroupSettings, Secret, TopologySettings

    topology = TopologySettings(
        groups={
            name: GroupSettings(
                modules=[name, *(["accounts"] if name == "identity" else [])],
                url=f"http://127.0.0.1:{8001 + i}",
            )
            for i, name in enumerate(("identity", "tasks", "notifications", "activity")[:groups])
        }
        | ({"gateway": GroupSettings(modules=[], url="http://127.0.0.1:8000")} if groups else {})
    )
    configured = msgspec.structs.replace(
        settings,
        server=msgspec.structs.replace(settings.server, workers=workers),
        database=msgspec.structs.replace(settings.database, url=Secret("postgresql+asyncpg://db.invalid/x")),
        topology=topology,
        events=msgspec.structs.replace(settings.events, bus="nats", namespace="unused"),  # never connected
    )
    composition = compose(configured, group="tasks" if groups else None)
    try:
        assert {m.name: m.database.pool_size for m in composition.modules} == expected
    finally:
        await composition.aclose()
