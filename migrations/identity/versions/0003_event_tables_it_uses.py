"""Identity keeps only the outbox (it consumes no events), and the outbox keeps trace context.

Revision ID: identity_0003
Revises: identity_0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from app.kernel.events.tables import (
    add_outbox_trace_context,
    create_inbox_v1,
    drop_inbox,
    drop_outbox_trace_context,
)

revision: str = "identity_0003"
down_revision: str | None = "identity_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_inbox()
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
    create_inbox_v1()
