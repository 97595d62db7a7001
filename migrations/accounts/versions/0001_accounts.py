"""Accounts: the saga log of its account closures.

Revision ID: accounts_0001
Revises:
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from app.kernel.sagas.tables import create_saga_log_v1, drop_saga_log

revision: str = "accounts_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_saga_log_v1()


def downgrade() -> None:
    drop_saga_log()
