"""Consumers of the tasks and identity modules' events: each becomes history in activity's store.

The kernel calls each method with a run of consecutive events of its type, in order, and
the unit of work in which it records them in this module's inbox: the appended events and
the inbox rows commit together (exactly once), and raising gets them redelivered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from contracts import IntegrationEvent

if TYPE_CHECKING:
    from modules.activity.repository import ActivityUnit
    from modules.activity.service import ActivityService

__all__ = ("ActivityHandlers",)


class ActivityHandlers:
    __slots__ = ("_service",)

    def __init__(self, *, service: ActivityService) -> None:
        self._service = service

    async def record(self, events: Sequence[IntegrationEvent], unit: ActivityUnit) -> None:
        """Every event activity consumes is history alike: appended to its task's or user's stream."""
        await self._service.record(events, unit=unit)
