"""Notifications keeps only the inbox: it publishes no events.

Revision ID: notifications_0002
Revises: notifications_0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from app.kernel.events.tables import create_outbox_v1, drop_outbox

revision: str = "notifications_0002"
down_revision: str | None = "notifications_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox()


def downgrade() -> None:
    create_outbox_v1()
