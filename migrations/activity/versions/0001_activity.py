"""Activity: its inbox, its event store (with data keys and checkpoints) and its read models.

Revision ID: activity_0001
Revises:
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.kernel.db import UtcDateTime
from app.kernel.events.tables import create_event_store_v1, create_inbox_v1, drop_event_store, drop_inbox

revision: str = "activity_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Position = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _entry_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
    ]


def upgrade() -> None:
    create_inbox_v1()
    create_event_store_v1()
    op.create_table(
        "activity_timeline",
        sa.Column("position", _Position, autoincrement=False, nullable=False),
        *_entry_columns(),
        sa.PrimaryKeyConstraint("position", name="pk_activity_timeline"),
    )
    op.create_index("ix_activity_timeline_task_id_position", "activity_timeline", ["task_id", "position"])
    op.create_table(
        "activity_feed",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("position", _Position, autoincrement=False, nullable=False),
        *_entry_columns(),
        sa.PrimaryKeyConstraint("member_id", "position", name="pk_activity_feed"),
    )
    op.create_table(
        "activity_audit",
        sa.Column("position", _Position, autoincrement=False, nullable=False),
        *_entry_columns(),
        sa.PrimaryKeyConstraint("position", name="pk_activity_audit"),
    )
    op.create_table(
        "activity_task_births",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", name="pk_activity_task_births"),
    )
    op.create_table(
        "activity_stat_marks",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("position", _Position, autoincrement=False, nullable=False),
        sa.Column("week", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("hours_to_done", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("user_id", "position", name="pk_activity_stat_marks"),
    )
    op.create_index("ix_activity_stat_marks_user_id_week", "activity_stat_marks", ["user_id", "week"])


def downgrade() -> None:
    for table in ("activity_stat_marks", "activity_task_births", "activity_audit", "activity_feed"):
        op.drop_table(table)
    op.drop_table("activity_timeline")
    drop_event_store()
    drop_inbox()
