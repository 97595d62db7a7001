"""The outbox keeps the trace context of the transaction that wrote each event.

Revision ID: tasks_0003
Revises: tasks_0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from app.kernel.events.tables import add_outbox_trace_context, drop_outbox_trace_context

revision: str = "tasks_0003"
down_revision: str | None = "tasks_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
