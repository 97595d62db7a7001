"""What the tasks module does when other modules' events arrive."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from contracts.identity import AccountClosed, UserDeactivated, UserProfileChanged, UserReactivated
    from modules.tasks.profiles import Profiles
    from modules.tasks.repository import TasksUnit
    from modules.tasks.service import TasksService

__all__ = ("TasksHandlers",)

log = logging.getLogger("tessera.tasks")


class TasksHandlers:
    __slots__ = ("_profiles", "_tasks")

    def __init__(self, *, tasks: TasksService, profiles: Profiles) -> None:
        self._tasks = tasks
        self._profiles = profiles

    async def on_user_deactivated(self, events: Sequence[UserDeactivated], unit: TasksUnit) -> None:
        """A deactivated user takes no work: their open tasks go back to their owners, unassigned."""
        for event in events:
            released = await self._tasks.unassign_user(event.user_id, unit=unit)
            self._profiles.forget(event.user_id)
            log.info("unassigned %d open tasks of deactivated user %s", released, event.user_id)

    async def on_user_changed(
        self, events: Sequence[UserProfileChanged | UserReactivated | AccountClosed], unit: TasksUnit
    ) -> None:
        """What task views show of the user is asked of identity again."""
        for event in events:
            self._profiles.forget(event.user_id)
