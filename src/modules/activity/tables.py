"""The activity schema: the read models its projections build from its event store.

The event store itself, the subjects' data keys and the projections' checkpoints are the
kernel's tables (``app.kernel.events.tables``), made by this module's migrations. Every
``data`` column holds JSON in which personal values are sealed, as they are in the store.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    Uuid,
)

from app.kernel.db import UtcDateTime, module_metadata

__all__ = ("audit", "feed", "metadata", "stat_marks", "task_births", "timeline")

metadata = module_metadata()

# A position in the event store: a 64-bit integer on PostgreSQL, SQLite's INTEGER.
_Position = BigInteger().with_variant(Integer(), "sqlite")


def _entry_columns() -> list[Column[object]]:
    """What every list of entries keeps of an event: the shape of contracts.activity.ActivityEntry."""
    return [
        Column("event_id", Uuid, nullable=False),
        Column("kind", String(40), nullable=False),
        Column("actor_id", Uuid, nullable=True),
        Column("task_id", Uuid, nullable=True),
        Column("user_id", Uuid, nullable=True),
        Column("occurred_at", UtcDateTime, nullable=False),
        Column("data", Text, nullable=False),
    ]


# Each task's timeline: one row per event of the task's stream.
timeline = Table(
    "activity_timeline",
    metadata,
    Column("position", _Position, primary_key=True, autoincrement=False),
    *_entry_columns(),
    Index("ix_activity_timeline_task_id_position", "task_id", "position"),
)

# Each user's feed: one row per event and user it concerns (owner, assignee, actor, ...).
feed = Table(
    "activity_feed",
    metadata,
    Column("member_id", Uuid, nullable=False),  # whose feed
    Column("position", _Position, nullable=False, autoincrement=False),
    *_entry_columns(),
    PrimaryKeyConstraint("member_id", "position"),
)

# Administrative actions, for administrators.
audit = Table(
    "activity_audit",
    metadata,
    Column("position", _Position, primary_key=True, autoincrement=False),
    *_entry_columns(),
)

# Statistics: when each task was created, and one mark per counted act.
task_births = Table(
    "activity_task_births",
    metadata,
    Column("task_id", Uuid, primary_key=True),
    Column("created_at", UtcDateTime, nullable=False),
)

stat_marks = Table(
    "activity_stat_marks",
    metadata,
    Column("user_id", Uuid, nullable=False),
    Column("position", _Position, nullable=False, autoincrement=False),
    Column("week", String(8), nullable=False),  # ISO week: 2026-W49
    Column("kind", String(16), nullable=False),  # created | completed | reopened
    Column("hours_to_done", Float, nullable=True),  # completed: since the task's creation
    PrimaryKeyConstraint("user_id", "position"),
    Index("ix_activity_stat_marks_user_id_week", "user_id", "week"),
)
