"""The kernel's event tables, made in a module's own database by the module's migrations.

The outbox (for a module that publishes events) and the inbox (for one that consumes
them); and for a module whose history is its data (event sourcing), the event store,
the data keys that make personal data in it erasable, and its projections' checkpoints.
The same tables live in each such module's own database (its SQLite file, or its
PostgreSQL schema through ``search_path``), so one set of Table objects serves all.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    literal_column,
    text,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import NamedFromClause

from app.kernel.db import NAMING_CONVENTION, UtcDateTime

__all__ = (
    "FAILED",
    "PENDING",
    "PUBLISHED",
    "add_outbox_pending_indexes",
    "add_outbox_trace_context",
    "checkpoints",
    "create_event_store_v1",
    "create_event_tables",
    "create_inbox_v1",
    "create_outbox_v1",
    "drop_event_store",
    "drop_event_tables",
    "drop_inbox",
    "drop_outbox",
    "drop_outbox_pending_indexes",
    "drop_outbox_trace_context",
    "inbox",
    "metadata",
    "outbox",
    "pending",
    "stored_events",
    "subject_keys",
)

PENDING = "pending"
PUBLISHED = "published"
FAILED = "failed"

TRACEPARENT_MAX = 128  # W3C Trace Context: version 00 is 55 characters; later versions may add fields
TRACESTATE_MAX = 512  # the specification's limit a carrier must propagate

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# A 64-bit identity on PostgreSQL; SQLite's rowid alias needs exactly INTEGER.
_Position = BigInteger().with_variant(Integer(), "sqlite")

# Pending rows, as the partial indexes and every query meant to use them say it: a literal, not
# a parameter, or neither SQLite's planner nor PostgreSQL's generic plans could use the indexes.
_PENDING_ROWS = text(f"status = '{PENDING}'")


def pending(table: Table | NamedFromClause) -> ColumnElement[bool]:
    """``table`` (the outbox, or an alias of it) limited to pending rows, as the partial indexes are."""
    return table.c.status == literal_column(f"'{PENDING}'")


outbox = Table(  # its schema now: version 3 (the migration steps below make each version)
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
    Column("traceparent", String(TRACEPARENT_MAX), nullable=True),  # v2: the writer's trace context
    Column("tracestate", String(TRACESTATE_MAX), nullable=True),
    Index("ix_outbox_key_id", "key", "id"),  # a key's events (redaction)
    Index("ix_outbox_status_published_at", "status", "published_at"),  # counts by status, pruning
    # v3: the relay's claim reads pending rows only, through indexes that hold nothing else, so
    # it never walks published rows nor the dead versions every claim and mark leave behind.
    # (Status leads the first, though constant in it: without it SQLite's planner, which has
    # no statistics, sorted the pending rows found through the status index above instead.)
    Index("ix_outbox_pending_id", "status", "id", postgresql_where=_PENDING_ROWS, sqlite_where=_PENDING_ROWS),
    Index(
        "ix_outbox_pending_key_id", "key", "id", postgresql_where=_PENDING_ROWS, sqlite_where=_PENDING_ROWS
    ),
)

inbox = Table(
    "inbox",
    metadata,
    Column("event_id", Uuid, primary_key=True),
    Column("event_type", String(120), nullable=False),
    Column("source", String(64), nullable=False),
    Column("handled_at", UtcDateTime, nullable=False, index=True),
)

# The event store: append-only streams. ``position`` orders every event of the store (a
# projection's checkpoint is one), ``version`` orders one stream's (1, 2, ...; an append
# names the version it expects to follow).
stored_events = Table(
    "stored_events",
    metadata,
    Column("position", _Position, primary_key=True, autoincrement=True),
    Column("stream", String(120), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(120), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),  # when the fact happened, as its source says
    Column("recorded_at", UtcDateTime, nullable=False),  # when the store took it
    Column("data", Text, nullable=False),  # JSON; personal values sealed (app.kernel.events.shredding)
    UniqueConstraint("stream", "version"),
)

# One data key per person whose personal data the store holds sealed. Deleting the row
# erases that data everywhere it was copied: events, projections and backups keep ciphertext.
subject_keys = Table(
    "subject_keys",
    metadata,
    Column("subject", Uuid, primary_key=True),
    Column("key", LargeBinary(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# How far each projection has read the store: written in the transaction of its effects.
checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", _Position, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Migration steps, called from a module's Alembic revisions. Each makes one version of a
# table and is never edited afterwards: a change is a new step here and a new revision in
# each module that keeps the table. A module keeps only the tables it uses: the outbox if
# it publishes, the inbox if it consumes.


def create_outbox_v1() -> None:
    from alembic import op

    op.create_table(
        "outbox",
        Column("id", _Position, primary_key=True, autoincrement=True),
        Column("event_id", Uuid, nullable=False),
        Column("event_type", String(120), nullable=False),
        Column("key", String(120), nullable=False),
        Column("payload", Text, nullable=False),
        Column("correlation_id", String(128), nullable=True),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("status", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("available_at", UtcDateTime, nullable=False),
        Column("claimed_by", String(64), nullable=True),
        Column("claimed_until", UtcDateTime, nullable=True),
        Column("published_at", UtcDateTime, nullable=True),
        Column("last_error", Text, nullable=True),
        PrimaryKeyConstraint("id", name="pk_outbox"),
        UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )
    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])
    op.create_index("ix_outbox_key_id", "outbox", ["key", "id"])
    op.create_index("ix_outbox_status_published_at", "outbox", ["status", "published_at"])


def create_inbox_v1() -> None:
    from alembic import op

    op.create_table(
        "inbox",
        Column("event_id", Uuid, nullable=False),
        Column("event_type", String(120), nullable=False),
        Column("source", String(64), nullable=False),
        Column("handled_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("event_id", name="pk_inbox"),
    )
    op.create_index("ix_inbox_handled_at", "inbox", ["handled_at"])


def add_outbox_trace_context() -> None:
    """Version 2 of the outbox: the W3C trace context of the transaction that wrote the event."""
    from alembic import op

    with op.batch_alter_table("outbox") as batch:
        batch.add_column(Column("traceparent", String(TRACEPARENT_MAX), nullable=True))
        batch.add_column(Column("tracestate", String(TRACESTATE_MAX), nullable=True))


def drop_outbox_trace_context() -> None:
    from alembic import op

    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")


def add_outbox_pending_indexes() -> None:
    """Version 3 of the outbox: the relay's claim reads pending rows through partial indexes."""
    from alembic import op

    op.create_index(
        "ix_outbox_pending_id",
        "outbox",
        ["status", "id"],
        postgresql_where=_PENDING_ROWS,
        sqlite_where=_PENDING_ROWS,
    )
    op.create_index(
        "ix_outbox_pending_key_id",
        "outbox",
        ["key", "id"],
        postgresql_where=_PENDING_ROWS,
        sqlite_where=_PENDING_ROWS,
    )
    op.drop_index("ix_outbox_status_id", table_name="outbox")


def drop_outbox_pending_indexes() -> None:
    from alembic import op

    op.create_index("ix_outbox_status_id", "outbox", ["status", "id"])
    op.drop_index("ix_outbox_pending_key_id", table_name="outbox")
    op.drop_index("ix_outbox_pending_id", table_name="outbox")


def drop_outbox() -> None:
    from alembic import op

    op.drop_table("outbox")


def drop_inbox() -> None:
    from alembic import op

    op.drop_table("inbox")


def create_event_tables() -> None:
    """Version 1 of both tables (the first revisions made both in every module)."""
    create_outbox_v1()
    create_inbox_v1()


def drop_event_tables() -> None:
    drop_inbox()
    drop_outbox()


def create_event_store_v1() -> None:
    """Version 1 of the event store, its subjects' data keys and its projections' checkpoints."""
    from alembic import op

    op.create_table(
        "stored_events",
        Column("position", _Position, primary_key=True, autoincrement=True),
        Column("stream", String(120), nullable=False),
        Column("version", Integer, nullable=False),
        Column("event_id", Uuid, nullable=False),
        Column("event_type", String(120), nullable=False),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("recorded_at", UtcDateTime, nullable=False),
        Column("data", Text, nullable=False),
        PrimaryKeyConstraint("position", name="pk_stored_events"),
        UniqueConstraint("event_id", name="uq_stored_events_event_id"),
        UniqueConstraint("stream", "version", name="uq_stored_events_stream_version"),
    )
    op.create_table(
        "subject_keys",
        Column("subject", Uuid, nullable=False),
        Column("key", LargeBinary(32), nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("subject", name="pk_subject_keys"),
    )
    op.create_table(
        "projection_checkpoints",
        Column("name", String(64), nullable=False),
        Column("position", _Position, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("name", name="pk_projection_checkpoints"),
    )


def drop_event_store() -> None:
    from alembic import op

    op.drop_table("projection_checkpoints")
    op.drop_table("subject_keys")
    op.drop_table("stored_events")
