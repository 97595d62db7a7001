"""The notifications REST API: the signed-in user's inbox."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_200_OK

from app.kernel.problems import problem_responses
from contracts import PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, Principal
from contracts.notifications import (
    MarkedRead,
    Notification,
    NotificationNotFound,
    NotificationPage,
    NotificationQuery,
    UnreadCount,
)
from modules.notifications.service import NotificationsService

__all__ = ("NotificationsController",)


class NotificationsController(Controller):
    path = "/notifications"
    tags = ("notifications",)

    @get("/", responses=problem_responses(401, 422), summary="Your notifications, newest first")
    async def list_notifications(
        self,
        principal: NamedDependency[Principal],
        notifications: NamedDependency[NotificationsService],
        unread: Annotated[bool, QueryParameter(description="only those not yet read")] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=PAGE_LIMIT_MAX)] = PAGE_LIMIT_DEFAULT,
        cursor: Annotated[str | None, QueryParameter(max_length=512, required=False)] = None,
    ) -> NotificationPage:
        return await notifications.list_notifications(
            principal, NotificationQuery(unread=unread, limit=limit, cursor=cursor)
        )

    @get(
        "/unread-count", responses=problem_responses(401), summary="How many of your notifications are unread"
    )
    async def unread_count(
        self, principal: NamedDependency[Principal], notifications: NamedDependency[NotificationsService]
    ) -> UnreadCount:
        return await notifications.unread_count(principal)

    @post(
        "/read-all",
        status_code=HTTP_200_OK,
        responses=problem_responses(401),
        summary="Mark every one of your notifications read",
    )
    async def mark_all_read(
        self, principal: NamedDependency[Principal], notifications: NamedDependency[NotificationsService]
    ) -> MarkedRead:
        return await notifications.mark_all_read(principal)

    @post(
        "/{notification_id:uuid}/read",
        status_code=HTTP_200_OK,
        responses=problem_responses(401, NotificationNotFound),
        summary="Mark one notification read (again: no change)",
    )
    async def mark_read(
        self,
        notification_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        notifications: NamedDependency[NotificationsService],
    ) -> Notification:
        return await notifications.mark_read(principal, notification_id)
