"""Session epochs: bumping a user's epoch makes every access token issued before it void.

Revision ID: identity_0004
Revises: identity_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.kernel.db import UtcDateTime

revision: str = "identity_0004"
down_revision: str | None = "identity_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("sessions_revoked_at", UtcDateTime(), nullable=True))
        batch.create_index("ix_users_sessions_revoked_at", ["sessions_revoked_at"])


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ix_users_sessions_revoked_at")
        batch.drop_column("sessions_revoked_at")
        batch.drop_column("session_epoch")
