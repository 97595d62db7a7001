"""Activity's read models, each a projection of its event store with a checkpoint of its own.

Each writes only to ``self.tables`` (a rebuild hands it shadow copies) and copies event
data as stored: personal values stay sealed in the read models too, so erasing a person's
key erases them here as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from sqlalchemy import insert, select

from app.kernel.events.projections import Projection
from contracts.tasks import TaskCreated
from modules.activity.domain import Entry, entry_of, stat_marks_of
from modules.activity.tables import audit, feed, stat_marks, task_births, timeline

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.kernel.events.store import StoredEvent

__all__ = ("AuditProjection", "FeedProjection", "StatsProjection", "TimelineProjection", "projections")

_TASK_EVENTS = "tasks."
_USER_EVENTS = "identity."
_CREATED = TaskCreated.type_name()


def _entry_row(event: StoredEvent, entry: Entry) -> dict[str, Any]:
    return {
        "position": event.position,
        "event_id": event.event_id,
        "kind": entry.kind.value,
        "actor_id": entry.actor_id,
        "task_id": entry.task_id,
        "user_id": entry.user_id,
        "occurred_at": event.occurred_at,
        "data": msgspec.json.encode(entry.data).decode(),
    }


class TimelineProjection(Projection):
    """Each task's history: every event of its stream."""

    name = "timeline"

    def __init__(self) -> None:
        super().__init__({"timeline": timeline})

    async def apply(self, connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        rows = [
            _entry_row(e, entry_of(e.event_type, e.data))
            for e in events
            if e.event_type.startswith(_TASK_EVENTS)
        ]
        if rows:
            await connection.execute(insert(self.tables["timeline"]), rows)


class FeedProjection(Projection):
    """Each user's feed: what happened to their tasks and what they did."""

    name = "feed"

    def __init__(self) -> None:
        super().__init__({"feed": feed})

    async def apply(self, connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        rows = []
        for event in events:  # the entry and its row once per event, a copy per member
            entry = entry_of(event.event_type, event.data)
            row = _entry_row(event, entry)
            rows += [{**row, "member_id": member} for member in sorted(entry.members)]
        if rows:
            await connection.execute(insert(self.tables["feed"]), rows)


class AuditProjection(Projection):
    """Administrative acts: who granted, deactivated (another) or reactivated whom, and when."""

    name = "audit"

    def __init__(self) -> None:
        super().__init__({"audit": audit})

    async def apply(self, connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        entries = [
            (event, entry_of(event.event_type, event.data))
            for event in events
            if event.event_type.startswith(_USER_EVENTS)
        ]
        rows = [_entry_row(event, entry) for event, entry in entries if entry.administrative]
        if rows:
            await connection.execute(insert(self.tables["audit"]), rows)


class StatsProjection(Projection):
    """Weekly figures per user: tasks created, completed, reopened; hours from creation to done."""

    name = "stats"

    def __init__(self) -> None:
        super().__init__({"births": task_births, "marks": stat_marks})

    async def apply(self, connection: AsyncConnection, events: Sequence[StoredEvent]) -> None:
        births_table, marks_table = self.tables["births"], self.tables["marks"]
        tasks = [e for e in events if e.event_type.startswith(_TASK_EVENTS)]
        if not tasks:
            return
        known = {UUID(e.data["task_id"]): e.occurred_at for e in tasks if e.event_type == _CREATED}
        if known:
            await connection.execute(
                insert(births_table), [{"task_id": k, "created_at": v} for k, v in known.items()]
            )
        if wanted := {UUID(e.data["task_id"]) for e in tasks} - set(known):
            found = await connection.execute(
                select(births_table.c.task_id, births_table.c.created_at).where(
                    births_table.c.task_id.in_(wanted)
                )
            )
            known.update({row.task_id: row.created_at for row in found})
        rows = [
            {
                "user_id": mark.user_id,
                "position": event.position,
                "week": mark.week,
                "kind": mark.kind,
                "hours_to_done": mark.hours_to_done,
            }
            for event in tasks
            for mark in stat_marks_of(
                event.event_type,
                event.data,
                event.occurred_at,
                born_at=known.get(UUID(event.data["task_id"])),
            )
        ]
        if rows:
            await connection.execute(insert(marks_table), rows)


def projections() -> list[Projection]:
    return [TimelineProjection(), FeedProjection(), StatsProjection(), AuditProjection()]
