"""The accounts module on its own: the closure saga over the fakes of the four contracts it calls.

Nothing here imports another module. The saga is driven step by step by the module's own
orchestrator (``drive``), so every test reads the saga log and the fakes' state, not timing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import pytest

import modules.accounts
from app.composition.container import Composition, compose
from app.kernel.clock import utcnow
from app.kernel.config import Settings
from app.kernel.sagas import Orchestrator
from contracts import DependencyUnavailable, Principal
from contracts.accounts import ClosureNotFound, ClosureRequest, NotPermittedOnAccount, SuccessorIsTheUser
from contracts.identity import ERASED_DISPLAY_NAME, AccountClosing
from contracts.tasks import HandOver, TaskStatus
from modules.accounts.service import AccountsService
from tests.fakes.activity import FakeActivity
from tests.fakes.identity import FakeIdentity
from tests.fakes.notifications import FakeNotifications
from tests.fakes.tasks import FakeTasks


@dataclass
class World:
    identity: FakeIdentity = field(default_factory=FakeIdentity)
    notifications: FakeNotifications = field(default_factory=FakeNotifications)
    activity: FakeActivity = field(default_factory=FakeActivity)
    tasks: FakeTasks = field(init=False)

    def __post_init__(self) -> None:
        self.tasks = FakeTasks(identity=self.identity)


class Clock:
    """The orchestrator's clock: a test moves it past a retry's backoff."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Accounts:
    service: AccountsService
    orchestrator: Orchestrator
    world: World
    clock: Clock

    async def close(self, user: UUID, successor: UUID, *, by: UUID | None = None) -> UUID:
        request = ClosureRequest(successor_id=successor, user_id=user if by else None)
        return (await self.service.close_account(Principal(user_id=by or user), request)).id


@pytest.fixture
async def accounts(migrated: Settings) -> AsyncIterator[Accounts]:
    world = World()
    composition: Composition = compose(
        migrated,
        catalog=(modules.accounts.module,),
        external={
            "identity": world.identity,
            "tasks": world.tasks,
            "notifications": world.notifications,
            "activity": world.activity,
        },
    )
    await composition.upgrade()
    composed = composition.module("accounts")
    clock = Clock()
    composed.container.orchestrator.add_kwargs(clock=clock)
    yield Accounts(composed.api(), composition.orchestrators[0], world, clock)
    await composition.aclose()


async def test_a_completed_closure_hands_the_work_over_and_erases_the_user_everywhere(
    accounts: Accounts,
) -> None:
    world = accounts.world
    ada, bob, carol = (world.identity.add_user(n) for n in ("Ada", "Bob", "Carol"))
    owned = world.tasks.add_task(ada, title="Ada's")
    finished = world.tasks.add_task(ada, status=TaskStatus.DONE)
    assigned = world.tasks.add_task(carol, assignee_id=ada)
    world.notifications.notify(ada)
    world.activity.did(ada)

    closure_id = await accounts.close(ada, bob)
    run = await accounts.orchestrator.drive(closure_id)

    assert run.state == "completed"
    assert [(s.name, s.state, s.attempts) for s in run.steps] == [
        ("close_account", "done", 1),
        ("hand_over_tasks", "done", 1),
        ("erase_account", "done", 1),
        ("delete_inbox", "done", 1),
        ("erase_activity", "done", 1),
    ]
    assert run.steps[1].outcome["handed_over"] == [str(owned)]
    owners = {t.id: (t.owner_id, t.assignee_id) for t in world.tasks.tasks()}
    assert owners[owned] == (bob, None)
    assert owners[finished] == (ada, None)  # finished work stays where it was
    assert owners[assigned] == (carol, None)
    assert (await world.identity.get_user(ada)).display_name == ERASED_DISPLAY_NAME
    assert world.identity.closed == [ada]
    assert world.notifications.of(ada) == []
    assert world.activity.erased == {ada: 1}


async def test_an_inactive_successor_turns_the_closure_back(accounts: Accounts) -> None:
    world = accounts.world
    ada, gone = world.identity.add_user("Ada"), world.identity.add_user("Gone", active=False)
    owned = world.tasks.add_task(ada)
    world.notifications.notify(ada)

    closure_id = await accounts.close(ada, gone)  # accepted: the saga finds out
    run = await accounts.orchestrator.drive(closure_id)

    assert run.state == "compensated"
    assert run.reason == f"hand_over_tasks: tasks.successor_unavailable: user {gone} is not an active user"
    assert [(s.name, s.state) for s in run.steps] == [
        ("close_account", "compensated"),
        ("hand_over_tasks", "failed"),
        ("erase_account", "pending"),
        ("delete_inbox", "pending"),
        ("erase_activity", "pending"),
    ]
    assert (await world.identity.require_active_user(ada)).display_name == "Ada"  # open again
    assert world.tasks.tasks()[0].owner_id == ada
    assert world.tasks.tasks()[0].id == owned
    assert len(world.notifications.of(ada)) == 1
    assert world.activity.erased == {}


async def test_compensation_hands_back_only_what_nobody_changed(accounts: Accounts) -> None:
    world = accounts.world
    ada, bob = world.identity.add_user("Ada"), world.identity.add_user("Bob")
    kept, edited = world.tasks.add_task(ada), world.tasks.add_task(ada)
    original_hand_over = world.tasks.hand_over

    async def hand_over_then_lose_the_answer(user_id: UUID, successor_id: UUID, step_key: str) -> None:
        await original_hand_over(user_id, successor_id, step_key)
        world.tasks.edit(edited, "Bob's now")  # Bob works on it at once
        raise DependencyUnavailable("the answer was lost")

    world.tasks.hand_over = hand_over_then_lose_the_answer  # type: ignore[method-assign]
    closure_id = await accounts.close(ada, bob)
    run = await accounts.orchestrator.drive(closure_id)
    for _ in range(2):  # the step's attempts, each after its backoff
        accounts.clock.advance(60)
        run = await accounts.orchestrator.drive(closure_id)

    assert run.state == "compensated"
    hand_back = run.steps[1]
    assert hand_back.state == "compensated"
    assert hand_back.outcome == {"restored": [str(kept)], "not_restored": [str(edited)]}
    owners = {t.id: t.owner_id for t in world.tasks.tasks()}
    assert owners == {kept: ada, edited: bob}


async def test_only_an_administrator_closes_another_users_account(accounts: Accounts) -> None:
    world = accounts.world
    ada, bob, admin = (world.identity.add_user(n) for n in ("Ada", "Bob", "Admin"))
    world.identity.make_admin(admin)
    with pytest.raises(NotPermittedOnAccount):
        await accounts.close(ada, bob, by=bob)
    closure_id = await accounts.close(ada, bob, by=admin)
    assert (await accounts.orchestrator.drive(closure_id)).state == "completed"
    assert world.identity.closed == [ada]


async def test_naming_oneself_successor_is_refused(accounts: Accounts) -> None:
    ada = accounts.world.identity.add_user("Ada")
    with pytest.raises(SuccessorIsTheUser):
        await accounts.close(ada, ada)


async def test_two_closures_of_one_account_at_once_are_one_saga(accounts: Accounts) -> None:
    world = accounts.world
    ada, bob = world.identity.add_user("Ada"), world.identity.add_user("Bob")
    first, second = await asyncio.gather(accounts.close(ada, bob), accounts.close(ada, bob))
    assert first == second
    assert (await accounts.orchestrator.drive(first)).state == "completed"
    assert world.identity.calls.count("erase_account") == 1


async def test_closures_naming_each_other_as_successor_both_turn_back(accounts: Accounts) -> None:
    """A closes naming B, B closes naming A, at once: each is closing before either hands over,
    so neither successor is active and both compensate: two open accounts, nothing moved."""
    world = accounts.world
    ada, bob = world.identity.add_user("Ada"), world.identity.add_user("Bob")
    ada_task, bob_task = world.tasks.add_task(ada), world.tasks.add_task(bob)
    closing, both_closing = world.identity.close_account, asyncio.Barrier(2)

    async def close_at_once(user_id: UUID, step_key: str) -> AccountClosing:
        closed = await closing(user_id, step_key)
        await both_closing.wait()  # "at once": neither goes on before the other closed
        return closed

    world.identity.close_account = close_at_once  # type: ignore[method-assign]
    closures = [await accounts.close(ada, bob), await accounts.close(bob, ada)]

    runs = await asyncio.gather(*(accounts.orchestrator.drive(c) for c in closures))

    assert [run.state for run in runs] == ["compensated", "compensated"]
    assert {t.id: t.owner_id for t in world.tasks.tasks()} == {ada_task: ada, bob_task: bob}
    for user in (ada, bob):
        assert (await world.identity.require_active_user(user)).id == user


async def test_closures_naming_each_other_one_after_the_other_close_the_first_only(
    accounts: Accounts,
) -> None:
    """The other order: A's closure ends before B's starts. B now names a closed account as
    successor, so B's turns back — and B keeps A's work, handed over by the first."""
    world = accounts.world
    ada, bob = world.identity.add_user("Ada"), world.identity.add_user("Bob")
    ada_task = world.tasks.add_task(ada)
    first = await accounts.orchestrator.drive(await accounts.close(ada, bob))
    second = await accounts.orchestrator.drive(await accounts.close(bob, ada))
    assert (first.state, second.state) == ("completed", "compensated")
    assert {t.id: t.owner_id for t in world.tasks.tasks()} == {ada_task: bob}
    assert (await world.identity.require_active_user(bob)).id == bob


async def test_after_the_pivot_a_failing_step_is_retried_and_flagged_stuck(accounts: Accounts) -> None:
    world = accounts.world
    ada, bob = world.identity.add_user("Ada"), world.identity.add_user("Bob")
    world.notifications.notify(ada)
    world.notifications.failures = [DependencyUnavailable("notifications is away")] * 5
    closure_id = await accounts.close(ada, bob)

    run = await accounts.orchestrator.drive(closure_id)
    for _ in range(4):
        accounts.clock.advance(120)
        run = await accounts.orchestrator.drive(closure_id)
    assert run.state == "stuck"
    assert run.reason == "delete_inbox: dependency.unavailable: notifications is away"
    assert world.identity.closed == [ada]  # past the pivot: no way back

    run = await accounts.orchestrator.retry(closure_id)  # an operator, once notifications is back
    run = await accounts.orchestrator.drive(closure_id)
    assert run.state == "completed"
    assert world.notifications.of(ada) == []


async def test_a_closure_is_seen_by_its_user_and_administrators_only(accounts: Accounts) -> None:
    world = accounts.world
    ada, bob, admin = (world.identity.add_user(n) for n in ("Ada", "Bob", "Admin"))
    world.identity.make_admin(admin)
    closure_id = await accounts.close(ada, bob)

    assert (await accounts.service.closure(Principal(user_id=ada), closure_id)).user_id == ada
    assert (await accounts.service.closure(Principal(user_id=admin), closure_id)).state == "running"
    for nobody in (bob, uuid.uuid4()):
        with pytest.raises(ClosureNotFound):
            await accounts.service.closure(Principal(user_id=nobody), closure_id)
    with pytest.raises(ClosureNotFound):
        await accounts.service.closure(Principal(user_id=admin), uuid.uuid4())


async def test_the_export_gathers_what_every_module_holds_about_the_user(accounts: Accounts) -> None:
    world = accounts.world
    ada, carol = world.identity.add_user("Ada"), world.identity.add_user("Carol")
    owned = world.tasks.add_task(ada, title="Mine")
    assigned = world.tasks.add_task(carol, assignee_id=ada)
    world.tasks.add_task(carol)  # not Ada's business
    told = world.notifications.notify(ada)
    did = world.activity.did(ada)

    export = await accounts.service.export(Principal(user_id=ada))

    assert (export.account.id, export.account.display_name) == (ada, "Ada")
    assert {t.id for t in export.tasks} == {owned, assigned}
    assert [n.id for n in export.notifications] == [told.id]
    assert [e.id for e in export.activity] == [did.id]


async def test_a_refused_pivot_hands_the_work_back_and_reopens_the_account(accounts: Accounts) -> None:
    """Someone reopened the account between the hand-over and the erasure: identity will not
    erase an account that is not closing, and the saga undoes both steps, newest first."""
    world = accounts.world
    ada, bob = world.identity.add_user("Ada"), world.identity.add_user("Bob")
    owned = world.tasks.add_task(ada)
    handing_over = world.tasks.hand_over

    async def hand_over_then_reopen(user_id: UUID, successor_id: UUID, step_key: str) -> HandOver:
        handed = await handing_over(user_id, successor_id, step_key)
        await world.identity.reopen_account(user_id, "an operator")
        return handed

    world.tasks.hand_over = hand_over_then_reopen  # type: ignore[method-assign]
    run = await accounts.orchestrator.drive(await accounts.close(ada, bob))

    assert run.state == "compensated"
    assert run.reason is not None
    assert run.reason.startswith("erase_account: identity.account_not_closing")
    assert [(s.name, s.state) for s in run.steps][:3] == [
        ("close_account", "compensated"),
        ("hand_over_tasks", "compensated"),
        ("erase_account", "failed"),
    ]
    assert run.steps[1].outcome == {"restored": [str(owned)], "not_restored": []}
    assert world.tasks.tasks()[0].owner_id == ada
    assert world.tasks.calls.count("hand_back") == 1
    assert (await world.identity.require_active_user(ada)).id == ada
