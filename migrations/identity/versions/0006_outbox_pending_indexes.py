"""The outbox's claim reads pending rows only, through partial indexes (outbox version 3).

Revision ID: identity_0006
Revises: identity_0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from app.kernel.events.tables import add_outbox_pending_indexes, drop_outbox_pending_indexes

revision: str = "identity_0006"
down_revision: str | None = "identity_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_pending_indexes()


def downgrade() -> None:
    drop_outbox_pending_indexes()
