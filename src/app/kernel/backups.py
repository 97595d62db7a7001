"""Backups of a module's database, one module at a time.

On SQLite a module's data is one file: :func:`back_up` copies it into a directory with
SQLite's online backup API, a consistent snapshot of one moment even while a server writes
(what the write-ahead log holds included); :func:`restore` writes such a copy back over the
module's file the same way, for a stopped server. On PostgreSQL a module's data is one
schema, and ``pg_dump --schema=<module>`` / ``pg_restore`` are the tools for it: both
functions refuse with that advice rather than half-do it.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from app.kernel.db import Database

__all__ = ("BackupError", "back_up", "backup_file", "restore")


class BackupError(Exception):
    """A backup or restore that cannot be done as asked; the message says why and what to do."""


def backup_file(database: Database, directory: Path) -> Path:
    return directory / f"{database.module}.db"


def back_up(database: Database, directory: Path) -> Path:
    """Copy the module's database into ``directory`` (``<module>.db``); the copy's path."""
    source = _sqlite_file(database)
    if not source.is_file():
        raise BackupError(f"{database.module}: no database at {source} (run `tessera db upgrade` first)")
    directory.mkdir(parents=True, exist_ok=True)
    target = backup_file(database, directory)
    _copy(source, target)
    return target


def restore(database: Database, directory: Path) -> Path:
    """Write the module's copy in ``directory`` back over its database; the copy's path."""
    live = _sqlite_file(database)
    copy = backup_file(database, directory)
    if not copy.is_file():
        raise BackupError(f"{database.module}: no backup at {copy}")
    with closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as check:
        if check.execute("PRAGMA integrity_check").fetchone() != ("ok",):
            raise BackupError(f"{database.module}: {copy} is damaged (integrity_check failed)")
    live.parent.mkdir(parents=True, exist_ok=True)
    _copy(copy, live)
    return copy


def _copy(source: Path, target: Path) -> None:
    with (
        closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as reading,
        closing(sqlite3.connect(target)) as writing,
    ):
        reading.backup(writing)


def _sqlite_file(database: Database) -> Path:
    if database.file is None:
        raise BackupError(
            f"{database.module}: on PostgreSQL back up the module's schema with "
            f"`pg_dump --format=custom --schema={database.schema or database.module}` "
            "and restore it with `pg_restore --clean` (README: Backups)"
        )
    return database.file
