"""RevokedSessions: what a process knows of voided access tokens, from identity's answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.kernel.security import RevokedSessions, VerifiedTokens
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


class Seconds:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    clock = Seconds()
    verified = VerifiedTokens(clock=clock)
    verified.put("token", {"sub": "ada", "exp": 1_060})
    claims = verified.get("token")
    assert claims == {"sub": "ada", "exp": 1_060}
    claims["exp"] = "changed by the caller"  # a copy: the remembered claims stay as they were
    assert verified.get("token") == {"sub": "ada", "exp": 1_060}
    assert verified.get("tokeN") is None  # any other string is checked afresh
    clock.now = 1_060.0
    assert verified.get("token") is None  # expired: checked afresh, and refused there


def test_verified_tokens_are_bounded_and_a_voided_users_go_at_once() -> None:
    verified = VerifiedTokens(size=2, clock=Seconds())
    ada, bob = uuid.uuid4(), uuid.uuid4()
    verified.put("a1", {"sub": str(ada), "exp": 2_000})
    verified.put("b1", {"sub": str(bob), "exp": 2_000})
    verified.put("a2", {"sub": str(ada), "exp": 2_000})  # the oldest makes room
    assert [t for t in ("a1", "b1", "a2") if verified.get(t)] == ["b1", "a2"]
    verified.forget_user(ada)
    assert verified.get("a2") is None
    assert verified.get("b1") is not None


async def test_a_newly_voided_user_is_announced_once() -> None:
    identity, clock = Identity(), Clock()
    revoked = RevokedSessions(
        identity.session_revocations, interval_seconds=0.5, token_ttl_seconds=900, clock=clock
    )
    heard: list[uuid.UUID] = []
    revoked.on_revoked(heard.append)
    ada = uuid.uuid4()
    identity.revocations.append(SessionRevocation(user_id=ada, epoch=1, revoked_at=START))
    clock.now += timedelta(seconds=1)
    await revoked.refresh()
    await revoked.refresh()  # seen again within the overlap: not news
    assert heard == [ada]
