"""The tasks schema. Users are referred to by id only: identity's tables are not ours."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    Uuid,
)

from app.kernel.db import UtcDateTime, module_metadata
from contracts.tasks import LABEL_MAX, TITLE_MAX

__all__ = ("hand_overs", "idempotency_keys", "metadata", "task_labels", "tasks")

metadata = module_metadata()

tasks = Table(
    "tasks",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("title", String(TITLE_MAX), nullable=False),
    Column("description", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("priority", SmallInteger, nullable=False),  # rank: low 0 … urgent 3, so it sorts
    Column("due_at", UtcDateTime, nullable=True),
    Column("owner_id", Uuid, nullable=False),
    Column("assignee_id", Uuid, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("version", Integer, nullable=False),
    Index("ix_tasks_owner_id_created_at_id", "owner_id", "created_at", "id"),
    Index("ix_tasks_assignee_id_created_at_id", "assignee_id", "created_at", "id"),
)

task_labels = Table(
    "task_labels",
    metadata,
    Column("task_id", Uuid, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(LABEL_MAX), nullable=False),
    Column("position", SmallInteger, nullable=False),
    PrimaryKeyConstraint("task_id", "label"),
    Index("ix_task_labels_label", "label"),
)

# A retried POST with the same key gets the first answer instead of a second task.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("owner_id", Uuid, nullable=False),
    Column("key", String(200), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("task_id", Uuid, nullable=False),
    Column("response", Text, nullable=False),  # the created task, as first returned
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("owner_id", "key"),
)

# Each hand-over of a closing account's work, by the saga step that asked: a repeat of the
# step answers from here, and its compensation knows exactly what moved (and at which version).
hand_overs = Table(
    "hand_overs",
    metadata,
    Column("step_key", String(200), nullable=False),
    Column("user_id", Uuid, nullable=False),
    Column("successor_id", Uuid, nullable=False),
    Column("moved", Text, nullable=False),  # JSON [[task_id, version after], ...]: given over
    Column("unassigned", Text, nullable=False),  # JSON [[task_id, version after], ...]: taken off
    Column("created_at", UtcDateTime, nullable=False),
    Column("handed_back", Text, nullable=True),  # JSON HandBack, once undone
    PrimaryKeyConstraint("step_key"),
)
