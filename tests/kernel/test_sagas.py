"""The kernel's sagas: a definition run from its durable log — forward, compensated, retried, stuck, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.kernel.clock import utcnow
from app.kernel.db import Database
from app.kernel.sagas import Orchestrator, Saga, Step, StepContext
from app.kernel.sagas.tables import metadata as saga_tables
from contracts import ContractError, DependencyUnavailable
from tests.kernel.scratch import scratch_database

SCHEMA = "saga_test"


class Order(msgspec.Struct, frozen=True, kw_only=True):
    item: str
    quantity: int


class OutOfStock(ContractError):
    code = "shop.out_of_stock"
    status = 409


@dataclass
class Shop:
    """Three modules' worth of effects, each applied once per step key (as the contracts promise)."""

    stock: int = 10
    reserved: dict[str, int] = field(default_factory=dict)
    charged: dict[str, int] = field(default_factory=dict)
    mailed: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[BaseException]] = field(default_factory=dict)  # raised in turn, per step

    def called(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if queued := self.failures.get(name):
            raise queued.pop(0)

    async def reserve(self, ctx: StepContext[Order]) -> dict[str, Any]:
        self.called("reserve")
        if ctx.step_key not in self.reserved:
            self.reserved[ctx.step_key] = ctx.data.quantity
            self.stock -= ctx.data.quantity
        return {"reserved": ctx.data.quantity}

    async def release(self, ctx: StepContext[Order]) -> dict[str, Any]:
        self.called("release")
        self.stock += self.reserved.pop(ctx.step_key, 0)
        return {"released": True}

    async def charge(self, ctx: StepContext[Order]) -> dict[str, Any]:
        self.called("charge")
        if ctx.data.quantity > 5:
            raise OutOfStock("no more than 5 at once")
        self.charged.setdefault(ctx.step_key, ctx.data.quantity * 3)
        return {"charged": self.charged[ctx.step_key], "reserved_before": ctx.outcomes["reserve"]}

    async def mail(self, ctx: StepContext[Order]) -> None:
        self.called("mail")
        self.mailed.setdefault(ctx.step_key, ctx.data.item)


def checkout(shop: Shop) -> Saga[Order]:
    return Saga(
        name="checkout",
        data=Order,
        steps=(
            Step(name="reserve", action=shop.reserve, compensation=shop.release, attempts=3),
            Step(name="charge", action=shop.charge, pivot=True, attempts=2),
            Step(name="mail", action=shop.mail, attempts=2),
        ),
        backoff_initial_seconds=1.0,
        backoff_max_seconds=4.0,
    )


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with scratch_database(request, tmp_path, SCHEMA, saga_tables, pool_size=5) as database:
        yield database


@pytest.fixture
def shop() -> Shop:
    return Shop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def orchestrator(database: Database, shop: Shop, clock: Clock, **options: Any) -> Orchestrator:
    return Orchestrator(module=SCHEMA, database=database, sagas=[checkout(shop)], clock=clock, **options)


def states(run: Any) -> list[tuple[str, str, int]]:
    return [(step.name, step.state, step.attempts) for step in run.steps]


async def test_a_saga_runs_its_steps_in_order_and_keeps_each_outcome(
    database: Database, shop: Shop, clock: Clock
) -> None:
    saga = orchestrator(database, shop, clock)
    run, new = await saga.begin(checkout(shop), key="order-1", data=Order(item="pen", quantity=2))
    assert new
    assert run.state == "running"
    assert states(run)[0] == ("reserve", "pending", 0)

    run = await saga.drive(run.id)

    assert run.state == "completed"
    assert run.ended_at is not None
    assert run.reason is None
    assert states(run) == [("reserve", "done", 1), ("charge", "done", 1), ("mail", "done", 1)]
    # A step sees what the ones before it answered; the log keeps every answer.
    assert run.steps[1].outcome == {"charged": 6, "reserved_before": {"reserved": 2}}
    assert run.data == {"item": "pen", "quantity": 2}
    assert shop.stock == 8
    assert list(shop.charged.values()) == [6]
    assert list(shop.mailed.values()) == ["pen"]


async def test_a_refusal_before_the_pivot_compensates_what_was_done_and_says_why(
    database: Database, shop: Shop, clock: Clock
) -> None:
    saga = orchestrator(database, shop, clock)
    run, _ = await saga.begin(checkout(shop), key="order-2", data=Order(item="ink", quantity=7))

    run = await saga.drive(run.id)

    assert run.state == "compensated"
    assert run.ended_at is not None
    assert run.reason == "charge: shop.out_of_stock: no more than 5 at once"
    # The refusal took no effect, so only the reservation is undone; the mail never went.
    assert states(run) == [("reserve", "compensated", 2), ("charge", "failed", 1), ("mail", "pending", 0)]
    assert run.steps[0].outcome == {"released": True}
    assert shop.stock == 10
    assert shop.charged == {}
    assert shop.mailed == {}
    assert shop.calls.get("charge") == 1


async def test_a_transient_failure_is_retried_after_a_backoff(
    database: Database, shop: Shop, clock: Clock
) -> None:
    shop.failures["reserve"] = [DependencyUnavailable("stock is away")]
    saga = orchestrator(database, shop, clock)
    run, _ = await saga.begin(checkout(shop), key="order-3", data=Order(item="pad", quantity=1))

    run = await saga.drive(run.id)
    assert run.state == "running"
    assert states(run)[0] == ("reserve", "failed", 1)
    assert run.steps[0].error == "dependency.unavailable: stock is away"
    assert (await saga.drive(run.id)).state == "running"  # not due yet: nothing is tried

    clock.advance(1.5)
    run = await saga.drive(run.id)
    assert run.state == "completed"
    assert states(run)[0] == ("reserve", "done", 2)
    assert shop.stock == 9


async def test_transient_failures_past_the_bound_compensate_the_step_that_may_have_taken_effect(
    database: Database, shop: Shop, clock: Clock
) -> None:
    # Two tries time out; the third reserves, then its answer is lost: the compensation sees to it.
    shop.failures["reserve"] = [TimeoutError(), TimeoutError()]
    saga = orchestrator(database, shop, clock)
    run, _ = await saga.begin(checkout(shop), key="order-4", data=Order(item="cap", quantity=3))
    for _ in range(2):
        run = await saga.drive(run.id)
        clock.advance(5)
    assert run.state == "running"  # two failures: one attempt left
    assert run.steps[0].error == "timed out"
    real_reserve = shop.reserve

    async def reserve_then_fail(ctx: StepContext[Order]) -> dict[str, Any]:
        await real_reserve(ctx)  # it took effect ...
        raise DependencyUnavailable("... but its answer was lost")

    shop.reserve = reserve_then_fail  # type: ignore[method-assign]
    saga = orchestrator(database, shop, clock)  # the definition now calls the lossy one
    run = await saga.drive(run.id)

    assert run.state == "compensated"
    assert run.reason == "reserve: dependency.unavailable: ... but its answer was lost"
    assert states(run)[0] == ("reserve", "compensated", 4)
    assert shop.stock == 10  # reserved once, released once


async def test_after_the_pivot_a_step_is_retried_for_ever_flagged_stuck_past_its_bound(
    database: Database, shop: Shop, clock: Clock
) -> None:
    shop.failures["mail"] = [OSError("smtp down"), OSError("smtp down"), OSError("smtp down")]
    saga = orchestrator(database, shop, clock)
    run, _ = await saga.begin(checkout(shop), key="order-5", data=Order(item="pen", quantity=1))

    run = await saga.drive(run.id)
    assert run.state == "running"
    assert states(run)[2] == ("mail", "failed", 1)
    clock.advance(5)
    run = await saga.drive(run.id)
    assert run.state == "stuck"
    assert run.reason == "mail: smtp down"
    assert shop.stock == 9
    assert len(shop.charged) == 1
    clock.advance(5)
    run = await saga.drive(run.id)
    assert run.state == "stuck"
    assert states(run)[2] == ("mail", "failed", 3)

    run = await saga.retry(run.id)  # an operator: now, please
    run = await saga.drive(run.id)
    assert run.state == "completed"
    assert states(run)[2] == ("mail", "done", 4)
    assert list(shop.mailed.values()) == ["pen"]


async def test_one_run_per_key_while_it_is_under_way(database: Database, shop: Shop, clock: Clock) -> None:
    saga = orchestrator(database, shop, clock)
    data = Order(item="pen", quantity=1)
    (first, new_first), (second, new_second) = await asyncio.gather(
        saga.begin(checkout(shop), key="order-6", data=data),
        saga.begin(checkout(shop), key="order-6", data=data),
    )
    assert first.id == second.id
    assert sorted([new_first, new_second]) == [False, True]

    await saga.drive(first.id)
    again, new = await saga.begin(checkout(shop), key="order-6", data=data)  # that one ended
    assert new
    assert again.id != first.id


async def test_orchestrators_in_two_processes_run_each_saga_once(
    database: Database, shop: Shop, clock: Clock
) -> None:
    one, two = orchestrator(database, shop, clock), orchestrator(database, shop, clock)
    runs = [
        (await one.begin(checkout(shop), key=f"order-{i}", data=Order(item="pen", quantity=1)))[0]
        for i in range(6)
    ]
    claimed = await asyncio.gather(one.run_due(), two.run_due())
    assert sum(claimed) == 6
    await asyncio.gather(*one._in_hand.values(), *two._in_hand.values())

    assert {(await one.get(run.id)).state for run in runs} == {"completed"}  # type: ignore[union-attr]
    assert shop.calls == {"reserve": 6, "charge": 6, "mail": 6}
    assert shop.stock == 4


async def test_a_run_whose_orchestrator_died_is_resumed_once_its_lease_lapses(
    database: Database, shop: Shop, clock: Clock
) -> None:
    hung = asyncio.Event()

    async def charge_and_hang(ctx: StepContext[Order]) -> dict[str, Any]:
        answer = await Shop.charge(shop, ctx)  # took effect in the callee ...
        hung.set()
        await asyncio.Event().wait()  # ... and this process never hears back
        return answer

    dying = Shop()
    dying.reserve, dying.charge = shop.reserve, charge_and_hang  # type: ignore[method-assign]
    first = Orchestrator(
        module=SCHEMA, database=database, sagas=[checkout(dying)], clock=clock, lease_seconds=60
    )
    run, _ = await first.begin(checkout(dying), key="order-7", data=Order(item="pen", quantity=2))
    driving = asyncio.create_task(first.drive(run.id))
    await asyncio.wait_for(hung.wait(), timeout=10)

    second = orchestrator(database, shop, clock, lease_seconds=60)
    assert await second.run_due() == 0  # the lease is held
    clock.advance(61)
    run = await second.drive(run.id)
    driving.cancel()

    assert run.state == "completed"
    assert states(run)[1] == ("charge", "done", 2)
    assert list(shop.charged.values()) == [6]  # called twice, with one step key: charged once
    assert shop.stock == 8


async def test_a_definition_has_at_most_one_pivot_and_nothing_after_it_compensates(shop: Shop) -> None:
    with pytest.raises(ValueError, match="more than one pivot"):
        Saga(
            name="x",
            data=Order,
            steps=(
                Step(name="a", action=shop.mail, pivot=True),
                Step(name="b", action=shop.mail, pivot=True),
            ),
        )
    with pytest.raises(ValueError, match="nothing undoes it"):
        Saga(
            name="x",
            data=Order,
            steps=(
                Step(name="a", action=shop.mail, pivot=True),
                Step(name="b", action=shop.mail, compensation=shop.mail),
            ),
        )


async def test_a_step_longer_than_the_lease_keeps_its_run(database: Database, shop: Shop) -> None:
    entered, finish = asyncio.Event(), asyncio.Event()

    async def slow_reserve(ctx: StepContext[Order]) -> dict[str, Any]:
        entered.set()
        await finish.wait()
        return await Shop.reserve(slow, ctx)

    slow = Shop()
    slow.reserve = slow_reserve  # type: ignore[method-assign]
    first = Orchestrator(module=SCHEMA, database=database, sagas=[checkout(slow)], lease_seconds=0.3)
    second = Orchestrator(module=SCHEMA, database=database, sagas=[checkout(shop)], lease_seconds=0.3)
    run, _ = await first.begin(checkout(slow), key="order-8", data=Order(item="pen", quantity=1))
    driving = asyncio.create_task(first.drive(run.id))
    await asyncio.wait_for(entered.wait(), timeout=10)
    for _ in range(5):  # 1.5 leases go by while the step runs: each time, the run is held
        await asyncio.sleep(0.3)
        assert await second.run_due() == 0
    finish.set()
    assert (await asyncio.wait_for(driving, timeout=10)).state == "completed"
    assert shop.calls == {}  # the second orchestrator never ran a step of it
    assert slow.calls == {"reserve": 1, "charge": 1, "mail": 1}
