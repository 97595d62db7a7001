"""Hand-overs: a closing account's work given to a successor, recorded by the saga step that asked.

Revision ID: tasks_0004
Revises: tasks_0003
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.kernel.db import UtcDateTime

revision: str = "tasks_0004"
down_revision: str | None = "tasks_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hand_overs",
        sa.Column("step_key", sa.String(200), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("successor_id", sa.Uuid(), nullable=False),
        sa.Column("moved", sa.Text(), nullable=False),
        sa.Column("unassigned", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("handed_back", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("step_key", name="pk_hand_overs"),
    )


def downgrade() -> None:
    op.drop_table("hand_overs")
