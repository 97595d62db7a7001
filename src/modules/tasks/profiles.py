"""Owners' and assignees' profiles for task views: identity's answers, kept a few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from uuid import UUID

    from contracts.identity import IdentityApi, UserProfile

__all__ = ("Profiles",)


class Profiles:
    """Display names for task views, asked of identity's contract and kept ``ttl_seconds``.

    Every task view shows two names; asking identity each time cost a unit of work in its
    database (in a split, a remote call) per request. A name is a nicety, so a copy a few
    seconds old is fine: the module forgets a user's copy the moment its inbox hears they
    changed (renamed, deactivated, reactivated), and a process that did not handle that event
    (another worker, another group) shows the old name for ``ttl_seconds`` at most. Unknown
    ids are asked again each time. At most ``size`` profiles are kept, the oldest dropped first.
    """

    __slots__ = ("_clock", "_entries", "_identity", "_size", "_ttl")

    def __init__(
        self,
        identity: IdentityApi,
        *,
        ttl_seconds: float,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._identity = identity
        self._ttl = ttl_seconds
        self._size = size
        self._clock = clock
        self._entries: dict[UUID, tuple[UserProfile, float]] = {}

    async def of(self, user_ids: Sequence[UUID]) -> dict[UUID, UserProfile]:
        """The profiles of those ids that exist, from the copies where fresh, else from identity."""
        now = self._clock()
        found: dict[UUID, UserProfile] = {}
        wanted: list[UUID] = []
        for user_id in user_ids:
            entry = self._entries.get(user_id)
            if entry is not None and entry[1] > now:
                found[user_id] = entry[0]
            else:
                wanted.append(user_id)
        if wanted:
            for profile in await self._identity.get_users(wanted):
                found[profile.id] = profile
                self._keep(profile, now + self._ttl)
        return found

    def forget(self, user_id: UUID) -> None:
        self._entries.pop(user_id, None)

    def _keep(self, profile: UserProfile, until: float) -> None:
        if self._ttl <= 0:
            return
        self._entries.pop(profile.id, None)  # re-inserted last: the oldest go first
        if len(self._entries) >= self._size:
            del self._entries[next(iter(self._entries))]
        self._entries[profile.id] = (profile, until)
