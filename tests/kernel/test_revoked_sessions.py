"""RevokedSessions: what a process knows of voided access tokens, from identity's answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.kernel.security import RevokedSessions
from contracts.identity import SessionRevocation

START = datetime(2030, 1, 1, tzinfo=UTC)


class Identity:
    """Answers like identity's contract; records what it was asked."""

    def __init__(self) -> None:
        self.revocations: list[SessionRevocation] = []
        self.asked: list[datetime] = []

    async def session_revocations(self, since: datetime) -> list[SessionRevocation]:
        self.asked.append(since)
        return [r for r in self.revocations if r.revoked_at > since]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


async def test_a_token_below_its_users_epoch_is_void_and_others_are_not() -> None:
    identity, clock = Identity(), Clock()
    revoked = RevokedSessions(
        identity.session_revocations, interval_seconds=0.5, token_ttl_seconds=900, clock=clock
    )
    ada, bob = uuid.uuid4(), uuid.uuid4()
    identity.revocations.append(SessionRevocation(user_id=ada, epoch=2, revoked_at=START))
    clock.now += timedelta(seconds=1)
    await revoked.refresh()
    assert revoked.voids(ada, 0)
    assert revoked.voids(ada, 1)
    assert not revoked.voids(ada, 2)  # a token issued after the revocation
    assert not revoked.voids(bob, 0)


async def test_each_poll_overlaps_the_last_and_old_revocations_are_forgotten() -> None:
    identity, clock = Identity(), Clock()
    revoked = RevokedSessions(
        identity.session_revocations, interval_seconds=0.5, token_ttl_seconds=60, clock=clock
    )
    assert identity.asked == []
    await revoked.refresh()
    assert identity.asked[0] == START - timedelta(seconds=65)  # as far back as a live token can reach
    ada = uuid.uuid4()
    # Stamped before the poll that just ran, committed after it: the next poll still sees it.
    identity.revocations.append(
        SessionRevocation(user_id=ada, epoch=1, revoked_at=START - timedelta(seconds=2))
    )
    clock.now += timedelta(seconds=1)
    await revoked.refresh()
    assert identity.asked[1] == START - RevokedSessions.OVERLAP
    assert revoked.voids(ada, 0)
    clock.now += timedelta(seconds=70)  # every token of epoch 0 has expired by now
    await revoked.refresh()
    assert not revoked.voids(ada, 0)


async def test_a_later_answer_never_lowers_an_epoch() -> None:
    identity, clock = Identity(), Clock()
    revoked = RevokedSessions(
        identity.session_revocations, interval_seconds=0.5, token_ttl_seconds=900, clock=clock
    )
    ada = uuid.uuid4()
    identity.revocations = [
        SessionRevocation(user_id=ada, epoch=3, revoked_at=START),
        SessionRevocation(user_id=ada, epoch=2, revoked_at=START - timedelta(seconds=1)),
    ]
    await revoked.refresh()
    assert revoked.voids(ada, 2)
