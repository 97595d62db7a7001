"""Account closure: an account may be closing (a saga under way) and, once closed, erased.

Revision ID: identity_0005
Revises: identity_0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.kernel.db import UtcDateTime

revision: str = "identity_0005"
down_revision: str | None = "identity_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("closing_since", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("erased_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("closing_since")
