"""Consumers of the tasks module's events: each turns one event into the notifications it deserves.

The kernel calls each method once per event, with the unit of work in which it records the
event in this module's inbox: the notifications and the inbox row commit together, and
raising gets the event redelivered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.tasks import TaskAssigned, TaskStatusChanged
from modules.notifications.domain import notifications_of_assignment, notifications_of_status_change

if TYPE_CHECKING:
    from modules.notifications.repository import NotificationsUnit
    from modules.notifications.service import NotificationsService

__all__ = ("NotificationHandlers",)


class NotificationHandlers:
    __slots__ = ("_service",)

    def __init__(self, *, service: NotificationsService) -> None:
        self._service = service

    async def on_task_assigned(self, event: TaskAssigned, unit: NotificationsUnit) -> None:
        await self._service.deliver(notifications_of_assignment(event), unit=unit)

    async def on_task_status_changed(self, event: TaskStatusChanged, unit: NotificationsUnit) -> None:
        await self._service.deliver(notifications_of_status_change(event), unit=unit)
