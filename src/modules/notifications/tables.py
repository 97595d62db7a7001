"""The notifications schema. Users, tasks and events are referred to by id only."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text, Uuid

from app.kernel.db import UtcDateTime, module_metadata

__all__ = ("metadata", "notifications")

metadata = module_metadata()

notifications = Table(
    "notifications",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("task_id", Uuid, nullable=False),
    # Text, not the tasks module's current limit: a longer title must not make an event undeliverable.
    Column("task_title", Text, nullable=False),
    Column("actor_id", Uuid, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("read_at", UtcDateTime, nullable=True),
    # Not unique: the inbox makes each event's effects happen once, and nothing else should.
    Column("event_id", Uuid, nullable=False),
    Index("ix_notifications_user_id_created_at_id", "user_id", "created_at", "id"),
    Index("ix_notifications_user_id_read_at", "user_id", "read_at"),
)
