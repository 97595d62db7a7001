"""The activity REST API: a task's timeline, the caller's feed and figures, the audit feed."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from app.kernel.problems import problem_responses, query_moment
from contracts import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, Principal
from contracts.activity import (
    ActivityPage,
    ActivityQuery,
    NotPermittedOnActivity,
    StatsQuery,
    TaskActivity,
    TaskActivityNotFound,
    UserStats,
)
from modules.activity.service import ActivityService

__all__ = ("AuditController", "FeedController", "TaskActivityController")

Limit = Annotated[int, QueryParameter(ge=1, le=PAGE_LIMIT_MAX)]
Cursor = Annotated[str | None, QueryParameter(max_length=512, required=False)]


def _moment_parameter(description: str, *, name: str | None = None) -> QueryParameter:
    return QueryParameter(
        name=name,
        required=False,
        max_length=64,
        description=description,
        schema_extra={"format": "date-time"},
    )


class TaskActivityController(Controller):
    path = "/tasks/{task_id:uuid}/activity"
    tags = ("activity",)

    @get(
        "/",
        responses=problem_responses(401, 422, TaskActivityNotFound),
        summary="A task's history, newest first (its owner and assignee only)",
    )
    async def task_activity(
        self,
        task_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        activity: NamedDependency[ActivityService],
        limit: Limit = PAGE_LIMIT_DEFAULT,
        cursor: Cursor = None,
        as_of: Annotated[
            str | None,
            _moment_parameter("the history up to this RFC 3339 moment, and the task's state then"),
        ] = None,
    ) -> TaskActivity:
        moment = query_moment(as_of, field="as_of") if as_of is not None else None
        return await activity.task_activity(
            principal, task_id, ActivityQuery(limit=limit, cursor=cursor, as_of=moment)
        )


class FeedController(Controller):
    path = "/activity"
    tags = ("activity",)

    @get("/", responses=problem_responses(401, 422), summary="What happened to your tasks and what you did")
    async def feed(
        self,
        principal: NamedDependency[Principal],
        activity: NamedDependency[ActivityService],
        limit: Limit = PAGE_LIMIT_DEFAULT,
        cursor: Cursor = None,
    ) -> ActivityPage:
        return await activity.user_feed(principal, ActivityQuery(limit=limit, cursor=cursor))

    @get(
        "/stats",
        responses=problem_responses(401, 422, NotPermittedOnActivity),
        summary="Your tasks created, completed and reopened per ISO week, and the median time to done",
    )
    async def stats(
        self,
        principal: NamedDependency[Principal],
        activity: NamedDependency[ActivityService],
        from_: Annotated[
            str | None,
            _moment_parameter("a moment in the first week (default: 11 weeks before `to`)", name="from"),
        ] = None,
        to: Annotated[str | None, _moment_parameter("a moment in the last week (default: now)")] = None,
        user_id: Annotated[
            UUID | None, QueryParameter(required=False, description="another user's (administrators only)")
        ] = None,
    ) -> UserStats:
        query = StatsQuery(
            from_=query_moment(from_, field="from") if from_ is not None else None,
            to=query_moment(to, field="to") if to is not None else None,
            user_id=user_id,
        )
        return await activity.user_stats(principal, query)


class AuditController(Controller):
    path = "/admin/audit"
    tags = ("activity", "admin")

    @get(
        "/",
        responses=problem_responses(401, 422, NotPermittedOnActivity),
        summary="Every administrative action, newest first (administrators only)",
    )
    async def audit(
        self,
        principal: NamedDependency[Principal],
        activity: NamedDependency[ActivityService],
        limit: Limit = PAGE_LIMIT_DEFAULT,
        cursor: Cursor = None,
    ) -> ActivityPage:
        return await activity.audit(principal, ActivityQuery(limit=limit, cursor=cursor))
