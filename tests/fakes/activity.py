"""An in-memory ActivityApi for the tests of modules that call activity."""

from __future__ import annotations

import uuid
from uuid import UUID

from app.kernel.clock import utcnow
from contracts import Principal
from contracts.activity import (
    ActivityApi,
    ActivityEntry,
    ActivityKind,
    ActivityPage,
    ActivityQuery,
    Erasure,
    NotPermittedOnActivity,
    StatsQuery,
    TaskActivity,
    TaskActivityNotFound,
    UserStats,
)

__all__ = ("FakeActivity",)


class FakeActivity(ActivityApi):
    """Each user's feed as a list; what it was asked to erase."""

    def __init__(self) -> None:
        self._feeds: dict[UUID, list[ActivityEntry]] = {}
        self.erased: dict[UUID, int] = {}  # user id -> times asked

    def did(self, user_id: UUID, kind: ActivityKind = ActivityKind.TASK_CREATED) -> ActivityEntry:
        entry = ActivityEntry(id=uuid.uuid4(), kind=kind, actor_id=user_id, occurred_at=utcnow())
        self._feeds.setdefault(user_id, []).insert(0, entry)
        return entry

    async def task_activity(self, principal: Principal, task_id: UUID, query: ActivityQuery) -> TaskActivity:
        raise TaskActivityNotFound(f"no task {task_id} in this fake")

    async def user_feed(self, principal: Principal, query: ActivityQuery) -> ActivityPage:
        return ActivityPage(items=self._feeds.get(principal.user_id, [])[: query.limit], next_cursor=None)

    async def user_stats(self, principal: Principal, query: StatsQuery) -> UserStats:
        raise NotPermittedOnActivity("this fake keeps no figures")

    async def audit(self, principal: Principal, query: ActivityQuery) -> ActivityPage:
        raise NotPermittedOnActivity("this fake keeps no audit")

    async def erase_user(self, user_id: UUID, step_key: str | None = None) -> Erasure:
        first = user_id not in self.erased
        self.erased[user_id] = self.erased.get(user_id, 0) + 1
        self._feeds.pop(user_id, None)
        return Erasure(user_id=user_id, erased=first)
