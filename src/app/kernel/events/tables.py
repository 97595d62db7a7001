"""The outbox and inbox tables every module that publishes or consumes events keeps.

The same two tables live in each such module's own database (its SQLite file, or its
PostgreSQL schema through ``search_path``), so one pair of Table objects serves all.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, Uuid

from app.kernel.db import NAMING_CONVENTION, UtcDateTime

__all__ = (
    "FAILED",
    "PENDING",
    "PUBLISHED",
    "create_event_tables",
    "drop_event_tables",
    "inbox",
    "metadata",
    "outbox",
)

PENDING = "pending"
PUBLISHED = "published"
FAILED = "failed"

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# A 64-bit identity on PostgreSQL; SQLite's rowid alias needs exactly INTEGER.
_Position = BigInteger().with_variant(Integer(), "sqlite")

outbox = Table(
    "outbox",
    metadata,
    Column("id", _Position, primary_key=True, autoincrement=True),  # insertion order
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(120), nullable=False),
    Column("key", String(120), nullable=False),  # the entity: its events go out in order
    Column("payload", Text, nullable=False),
    Column("correlation_id", String(128), nullable=True),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("status", String(16), nullable=False),  # pending | published | failed
    Column("attempts", Integer, nullable=False),
    Column("available_at", UtcDateTime, nullable=False),  # not before: backoff after a failure
    Column("claimed_by", String(64), nullable=True),
    Column("claimed_until", UtcDateTime, nullable=True),  # the claim's lease
    Column("published_at", UtcDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_status_id", "status", "id"),
    Index("ix_outbox_key_id", "key", "id"),
    Index("ix_outbox_status_published_at", "status", "published_at"),
)

inbox = Table(
    "inbox",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("event_type", String(120), nullable=False),
    Column("source", String(64), nullable=False),
    Column("handled_at", UtcDateTime, nullable=False, index=True),
)


def create_event_tables() -> None:
    """Migration step: create the outbox and inbox, version 1 of their schema.

    Called from a module's Alembic revision; a later change of these tables is a new
    function here and a new revision in each module, never an edit of this one.
    """
    from alembic import op

    for table in (outbox, inbox):
        table.create(op.get_bind())


def drop_event_tables() -> None:
    from alembic import op

    for table in (inbox, outbox):
        table.drop(op.get_bind())
