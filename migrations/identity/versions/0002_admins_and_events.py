"""Administrators, and the outbox and inbox of identity's events.

Revision ID: identity_0002
Revises: identity_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.kernel.events.tables import create_event_tables, drop_event_tables

revision: str = "identity_0002"
down_revision: str | None = "identity_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    create_event_tables()


def downgrade() -> None:
    drop_event_tables()
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_admin")
