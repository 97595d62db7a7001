"""The saga log: made in the orchestrating module's own database by its migrations.

One row per saga run (its state, where it stands, its lease) and one per step (its state,
attempts and outcome). The run's ``open_key`` holds its business key (e.g. the account
being closed) while it is unfinished and is unique: a second run of the same thing cannot
start while one is under way, on any process.
"""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, Uuid
from sqlalchemy.sql.schema import SchemaItem

from app.kernel.db import NAMING_CONVENTION, UtcDateTime

__all__ = ("create_saga_log_v1", "drop_saga_log", "metadata", "saga_runs", "saga_steps")

metadata = MetaData(naming_convention=NAMING_CONVENTION)

KEY_MAX = 200


def _run_columns() -> list[SchemaItem]:
    return [
        Column("id", Uuid, nullable=False),
        Column("saga", String(60), nullable=False),  # the definition's name
        Column("key", String(KEY_MAX), nullable=False),  # what it is about
        Column("open_key", String(KEY_MAX), nullable=True, unique=True),  # = key until it ends
        Column("data", Text, nullable=False),  # its input, JSON
        # running | compensating | compensated | completed | stuck
        Column("state", String(16), nullable=False),
        Column("backward", Integer, nullable=False),  # 1 while compensating (a stuck one too)
        Column("position", Integer, nullable=False),  # the step in hand
        Column("tries", Integer, nullable=False),  # its failures in a row (the stuck bound)
        Column("reason", Text, nullable=True),  # why it compensated, or is stuck
        Column("next_at", UtcDateTime, nullable=False),  # not before: a retry's backoff
        Column("owner", String(64), nullable=True),  # the orchestrator running it ...
        Column("lease_until", UtcDateTime, nullable=True),  # ... until then, unless it renews
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("ended_at", UtcDateTime, nullable=True),
        PrimaryKeyConstraint("id", name="pk_saga_runs"),
    ]


def _step_columns() -> list[SchemaItem]:
    return [
        Column("saga_id", Uuid, nullable=False),
        Column("position", Integer, nullable=False),
        Column("name", String(60), nullable=False),
        # pending | running | done | failed | compensating | compensated
        Column("state", String(16), nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("outcome", Text, nullable=True),  # JSON: the action's, then the compensation's
        Column("error", Text, nullable=True),  # the last failure
        Column("updated_at", UtcDateTime, nullable=False),
        PrimaryKeyConstraint("saga_id", "position", name="pk_saga_steps"),
    ]


saga_runs = Table("saga_runs", metadata, *_run_columns())
saga_steps = Table("saga_steps", metadata, *_step_columns())


def create_saga_log_v1() -> None:
    """Version 1 of the saga log (in a module's Alembic migration)."""
    from alembic import op

    op.create_table("saga_runs", *_run_columns())
    op.create_index("ix_saga_runs_state_next_at", "saga_runs", ["state", "next_at"])
    op.create_index("ix_saga_runs_key", "saga_runs", ["key"])
    op.create_table("saga_steps", *_step_columns())


def drop_saga_log() -> None:
    from alembic import op

    op.drop_table("saga_steps")
    op.drop_table("saga_runs")
