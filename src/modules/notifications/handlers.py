"""Consumers of the tasks module's events: each event becomes the notifications it deserves.

The kernel calls each method with a run of consecutive events of its type (one, when they
come one at a time), in order, and the unit of work in which it records them in this
module's inbox: the notifications and the inbox rows commit together, and raising gets the
events redelivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from contracts.tasks import TaskAssigned, TaskOwnerChanged, TaskStatusChanged
from modules.notifications.domain import (
    notifications_of_assignment,
    notifications_of_owner_change,
    notifications_of_status_change,
)

if TYPE_CHECKING:
    from modules.notifications.repository import NotificationsUnit
    from modules.notifications.service import NotificationsService

__all__ = ("NotificationHandlers",)


class NotificationHandlers:
    __slots__ = ("_service",)

    def __init__(self, *, service: NotificationsService) -> None:
        self._service = service

    async def on_task_assigned(self, events: Sequence[TaskAssigned], unit: NotificationsUnit) -> None:
        found = [n for event in events for n in notifications_of_assignment(event)]
        await self._service.deliver(found, unit=unit)  # one insert for the run

    async def on_task_status_changed(
        self, events: Sequence[TaskStatusChanged], unit: NotificationsUnit
    ) -> None:
        found = [n for event in events for n in notifications_of_status_change(event)]
        await self._service.deliver(found, unit=unit)

    async def on_task_owner_changed(
        self, events: Sequence[TaskOwnerChanged], unit: NotificationsUnit
    ) -> None:
        found = [n for event in events for n in notifications_of_owner_change(event)]
        await self._service.deliver(found, unit=unit)
