"""Profiles: identity's names for task views, kept a few seconds and asked again after."""

from __future__ import annotations

from uuid import UUID

from contracts.identity import UserProfile
from modules.tasks.profiles import Profiles
from tests.fakes.identity import FakeIdentity


class Counting(FakeIdentity):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[UUID]] = []

    async def get_users(self, user_ids: list[UUID]) -> list[UserProfile]:
        self.asked.append(list(user_ids))
        return await super().get_users(user_ids)


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_names_are_asked_once_per_ttl_and_only_those_not_known() -> None:
    identity, clock = Counting(), Clock()
    profiles = Profiles(identity, ttl_seconds=5, clock=clock)
    ada, bob = identity.add_user("Ada"), identity.add_user("Bob")
    assert (await profiles.of([ada]))[ada].display_name == "Ada"
    assert set(await profiles.of([ada, bob])) == {ada, bob}
    assert identity.asked == [[ada], [bob]]  # Ada's copy served the second time
    identity.add_user("Ada Lovelace", user_id=ada)
    clock.now += 5  # the copy has had its time
    assert (await profiles.of([ada]))[ada].display_name == "Ada Lovelace"


async def test_a_forgotten_or_unknown_user_is_asked_again_and_zero_keeps_nothing() -> None:
    identity, clock = Counting(), Clock()
    profiles = Profiles(identity, ttl_seconds=5, clock=clock)
    ada, ghost = identity.add_user("Ada"), identity.add_user("Ghost")
    identity.remove_user(ghost)
    await profiles.of([ada, ghost])
    profiles.forget(ada)
    await profiles.of([ada, ghost])
    assert identity.asked == [[ada, ghost], [ada, ghost]]
    uncached = Profiles(identity, ttl_seconds=0, clock=clock)
    await uncached.of([ada])
    await uncached.of([ada])
    assert identity.asked[-2:] == [[ada], [ada]]
