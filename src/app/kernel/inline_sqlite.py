"""SQLite connections that answer on the event loop's own thread: no thread hop per statement.

aiosqlite gives each connection a thread and hands every call (begin, execute, fetch,
commit) to it and the answer back through the loop: under load a one-row read cost about
as much in hand-offs as in SQLite. A read from a WAL database is short and never waits for
the writer, so read units run on the loop through these; writes stay on aiosqlite's
threads (a commit waits for the disk), so a slow write never stalls the loop.

The classes speak the part of aiosqlite's API that SQLAlchemy's aiosqlite dialect uses,
so an engine made with ``async_creator=`` keeps that dialect, its pool and its statement
cache; each coroutine finishes before it returns, so awaiting it never yields to the loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

__all__ = ("InlineConnection", "inline_connector")


class InlineCursor:
    """aiosqlite's cursor, over a sqlite3 cursor."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    """aiosqlite's connection, over a sqlite3 connection used on the loop's thread only."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    @property
    def _connection(self) -> sqlite3.Connection:
        # SQLAlchemy's adapter looks here (as in aiosqlite) to know the connection is open.
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()


def inline_connector(
    path: str, *, on_connect: Callable[[str], None]
) -> Callable[[], Awaitable[InlineConnection]]:
    """The ``async_creator`` of an engine whose connections to ``path`` run inline."""

    async def connect() -> InlineConnection:
        on_connect(path)
        # check_same_thread off as SQLAlchemy's own SQLite dialects do: the pool may close
        # a connection from the thread that disposes of the engine.
        return InlineConnection(sqlite3.connect(path, check_same_thread=False))

    return connect
