"""The notifications module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.notifications import NOTIFICATIONS
from contracts.tasks import TaskAssigned, TaskOwnerChanged, TaskStatusChanged
from modules.notifications.container import NotificationsContainer
from modules.notifications.handlers import NotificationHandlers
from modules.notifications.http import NotificationsController

__all__ = ("module",)

module = Module(
    name="notifications",
    summary="Each user's inbox: what others did to their tasks",
    provides=NOTIFICATIONS,
    container=NotificationsContainer,
    api=NotificationsContainer.service,
    routes=(NotificationsController,),
    route_dependencies={"notifications": NotificationsContainer.service},
    units=NotificationsContainer.units,
    handlers=NotificationsContainer.handlers,
    consumes={
        TaskAssigned: NotificationHandlers.on_task_assigned,
        TaskStatusChanged: NotificationHandlers.on_task_status_changed,
        TaskOwnerChanged: NotificationHandlers.on_task_owner_changed,
    },
)
