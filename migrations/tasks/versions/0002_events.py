"""The outbox and inbox of the tasks module's events.

Revision ID: tasks_0002
Revises: tasks_0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from app.kernel.events.tables import create_event_tables, drop_event_tables

revision: str = "tasks_0002"
down_revision: str | None = "tasks_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_event_tables()


def downgrade() -> None:
    drop_event_tables()
