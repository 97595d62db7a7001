"""The orchestrator: runs a module's sagas from their durable log, to the end, once.

Every move is written to the saga log in the orchestrating module's own database *before*
the step is called (the step is running, one more attempt) and *after* it answered (done
with its outcome, or failed with the error): a process that dies anywhere leaves a log
from which any orchestrator resumes — the step in hand is called again, with the same step
key, and the callee's idempotency makes that harmless.

A run is driven by one orchestrator at a time: it holds the run's *lease* (owner and
``lease_until``, renewed at each step, as the outbox relay does its claims), and every
write to the run is conditional on still holding it. Orchestrators in other processes or
workers pick up runs whose lease lapsed (their owner died) and runs that wait for a retry.

Failure rules (see :class:`~app.kernel.sagas.definition.Step`):

- before the pivot, a refusal (a contract error) or ``attempts`` transient failures turn
  the saga around: it *compensates* every step that took effect, newest first (a step that
  failed transiently may have taken effect: it is compensated too; its compensation is
  keyed like its action, so undoing what never happened is harmless);
- the pivot refused compensates too; failing transiently, it is retried, as is every step
  after it: with backoff, for ever, the saga flagged *stuck* (for an operator) after
  ``attempts`` failures in a row — and back to running as soon as the step succeeds;
- a compensation is retried likewise until it succeeds (stuck past its bound).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from app.kernel.clock import Clock, utcnow
from app.kernel.events.outbox import backoff_delay
from app.kernel.faults import crash_point
from app.kernel.refresher import Refresher
from app.kernel.sagas.definition import Action, Saga, Step, StepContext, is_transient
from app.kernel.sagas.tables import saga_runs, saga_steps
from app.kernel.telemetry.metrics import (
    SAGA_STEP_DURATION,
    SAGAS_ENDED,
    SAGAS_OPEN,
    SAGAS_STARTED,
    SAGAS_STUCK,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from app.kernel.db import Database

__all__ = ("ENDED", "Orchestrator", "SagaRun", "SagaStep", "SagaUnknown")

log = logging.getLogger("tessera.sagas")

D = TypeVar("D", bound=msgspec.Struct)

RUNNING = "running"
COMPENSATING = "compensating"
COMPENSATED = "compensated"
COMPLETED = "completed"
STUCK = "stuck"
ENDED = frozenset({COMPENSATED, COMPLETED})
_UNFINISHED = (RUNNING, COMPENSATING, STUCK)

CLOSE_SECONDS = 5.0  # stop(): how long runs in hand may take to finish their step
ERROR_MAX = 2000  # characters of an error kept in the log


class SagaUnknown(LookupError):
    """No saga run has that id (or it is of a type this orchestrator does not know)."""


class SagaStep(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str  # pending | running | done | failed | compensating | compensated
    attempts: int
    outcome: Any = None
    error: str | None = None


class SagaRun(msgspec.Struct, frozen=True, kw_only=True):
    """One saga run as its log has it."""

    id: uuid.UUID
    saga: str
    key: str
    data: Any  # the input, as JSON values
    state: str  # running | compensating | compensated | completed | stuck
    reason: str | None
    step: str | None  # the step in hand (None once ended)
    steps: list[SagaStep]
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None

    @property
    def ended(self) -> bool:
        return self.state in ENDED


class _LostLease(Exception):
    """Another orchestrator holds the run now (ours lapsed): stop driving it."""


class Orchestrator:
    """Starts, drives and resumes the runs of a module's sagas (``sagas``: its definitions)."""

    def __init__(
        self,
        *,
        module: str,
        database: Database,
        sagas: Sequence[Saga[Any]],
        poll_seconds: float = 1.0,
        lease_seconds: float = 15.0,
        clock: Clock = utcnow,
    ) -> None:
        self.module = module
        self._database = database
        self._sagas = {saga.name: saga for saga in sagas}
        self._lease = timedelta(seconds=lease_seconds)
        self._clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._in_hand: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._stopping = False
        self._runner = Refresher(f"{module} sagas", self.run_due, interval=lambda _: poll_seconds)

    @property
    def sagas(self) -> list[str]:
        return sorted(self._sagas)

    # -- starting and reading -------------------------------------------------------------

    async def begin(self, saga: Saga[D], *, key: str, data: D) -> tuple[SagaRun, bool]:
        """Start a run of ``saga`` about ``key``, or find the one under way: (run, whether new).

        Written to the log before anything runs; this process drives it at once, any other
        orchestrator of the module picks it up if this one dies first.
        """
        if saga.name not in self._sagas:
            raise SagaUnknown(f"{self.module} does not orchestrate {saga.name!r}")
        now = self._clock()
        saga_id = uuid.uuid4()
        try:
            async with self._database.transaction() as connection:
                await connection.execute(
                    insert(saga_runs).values(
                        id=saga_id,
                        saga=saga.name,
                        key=key,
                        open_key=f"{saga.name}:{key}",
                        data=msgspec.json.encode(data).decode(),
                        state=RUNNING,
                        backward=0,
                        position=0,
                        tries=0,
                        next_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await connection.execute(
                    insert(saga_steps),
                    [
                        {
                            "saga_id": saga_id,
                            "position": i,
                            "name": step.name,
                            "state": "pending",
                            "attempts": 0,
                            "updated_at": now,
                        }
                        for i, step in enumerate(saga.steps)
                    ],
                )
        except IntegrityError:  # one is under way: that one is the answer
            async with self._database.read() as connection:
                found = await connection.scalar(
                    select(saga_runs.c.id).where(saga_runs.c.open_key == f"{saga.name}:{key}")
                )
            if found is None:  # it ended in between: start afresh
                return await self.begin(saga, key=key, data=data)
            run = await self.get(found)
            assert run is not None
            return run, False
        SAGAS_STARTED.labels(saga.name).inc()
        self._runner.wake()
        run = await self.get(saga_id)
        assert run is not None
        return run, True

    async def get(self, saga_id: uuid.UUID) -> SagaRun | None:
        async with self._database.read() as connection:
            row = (await connection.execute(select(saga_runs).where(saga_runs.c.id == saga_id))).first()
            if row is None:
                return None
            steps = (
                await connection.execute(
                    select(saga_steps).where(saga_steps.c.saga_id == saga_id).order_by(saga_steps.c.position)
                )
            ).all()
        return _run_of(row, steps)

    async def runs(self, *, states: Sequence[str] = (), limit: int = 50) -> list[SagaRun]:
        """The newest runs first (of those ``states``, if given)."""
        query = select(saga_runs.c.id).order_by(saga_runs.c.created_at.desc()).limit(limit)
        if states:
            query = query.where(saga_runs.c.state.in_(states))
        async with self._database.read() as connection:
            ids = list((await connection.scalars(query)).all())
        return [run for saga_id in ids if (run := await self.get(saga_id)) is not None]

    async def retry(self, saga_id: uuid.UUID) -> SagaRun:
        """Try a waiting or stuck run's step in hand now, with its failure count reset."""
        async with self._database.transaction() as connection:
            backward = await connection.scalar(
                select(saga_runs.c.backward).where(
                    saga_runs.c.id == saga_id, saga_runs.c.state.in_(_UNFINISHED)
                )
            )
            if backward is not None:
                await connection.execute(
                    update(saga_runs)
                    .where(saga_runs.c.id == saga_id)
                    .values(
                        state=COMPENSATING if backward else RUNNING,
                        tries=0,
                        next_at=self._clock(),
                        updated_at=self._clock(),
                    )
                )
        run = await self.get(saga_id)
        if run is None:
            raise SagaUnknown(f"no saga run {saga_id}")
        self._runner.wake()
        return run

    async def counts(self) -> dict[tuple[str, str], int]:
        """Unfinished runs by (saga, state): what ``tessera_sagas_open`` reports."""
        async with self._database.read() as connection:
            rows = await connection.execute(
                select(saga_runs.c.saga, saga_runs.c.state, func.count())
                .where(saga_runs.c.state.in_(_UNFINISHED))
                .group_by(saga_runs.c.saga, saga_runs.c.state)
            )
            return {(saga, state): count for saga, state, count in rows}

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Drive every due run from now on: new ones at once, the rest as they fall due."""
        self._stopping = False
        await self._runner.start()

    async def stop(self) -> None:
        """Let the runs in hand finish their step (for a while), then stop."""
        self._stopping = True
        await self._runner.stop()
        tasks = list(self._in_hand.values())
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=CLOSE_SECONDS)

    async def run_due(self) -> int:
        """Claim the runs that are due and drive each in the background; how many were claimed."""
        claimed = await self._claim()
        for saga_id in claimed:
            task = asyncio.create_task(self._drive(saga_id), name=f"saga:{saga_id}")
            self._in_hand[saga_id] = task
            task.add_done_callback(functools.partial(self._let_go, saga_id))
        counts = await self.counts()
        for name in self._sagas:
            for state in _UNFINISHED:
                SAGAS_OPEN.labels(name, state).set(counts.get((name, state), 0))
        return len(claimed)

    def _let_go(self, saga_id: uuid.UUID, _task: asyncio.Task[None]) -> None:
        self._in_hand.pop(saga_id, None)

    async def drive(self, saga_id: uuid.UUID) -> SagaRun:
        """Claim one run and drive it until it ends or waits (tests and ``tessera sagas``)."""
        if await self._claim(saga_id):
            await self._drive(saga_id)
        run = await self.get(saga_id)
        if run is None:
            raise SagaUnknown(f"no saga run {saga_id}")
        return run

    async def _claim(self, saga_id: uuid.UUID | None = None) -> list[uuid.UUID]:
        now = self._clock()
        free = or_(saga_runs.c.lease_until.is_(None), saga_runs.c.lease_until < now)
        due = and_(
            saga_runs.c.state.in_(_UNFINISHED),
            saga_runs.c.next_at <= now,
            saga_runs.c.saga.in_(list(self._sagas)),
            free,
        )
        if saga_id is not None:
            due = and_(due, saga_runs.c.id == saga_id)
        candidates = (
            select(saga_runs.c.id)
            .where(due, saga_runs.c.id.not_in(list(self._in_hand)))
            .order_by(saga_runs.c.next_at)
            .limit(20)
        )
        if self._database.dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        async with self._database.transaction() as connection:
            rows = await connection.execute(
                update(saga_runs)
                .where(saga_runs.c.id.in_(candidates.scalar_subquery()), free)  # free: re-checked
                .values(owner=self.owner, lease_until=now + self._lease)
                .returning(saga_runs.c.id)
            )
            return list(rows.scalars().all())

    async def _drive(self, saga_id: uuid.UUID) -> None:
        try:
            while not self._stopping:
                row = await self._held(saga_id)
                if row is None or row.state in ENDED or row.next_at > self._clock():
                    break
                saga = self._sagas[row.saga]
                if row.backward:
                    await self._compensate(saga, row)
                else:
                    await self._forward(saga, row)
        except _LostLease:
            log.info("saga %s: another orchestrator holds it now", saga_id)
            return
        except Exception:
            log.exception("saga %s: the orchestrator failed; it is resumed after its lease", saga_id)
            return
        await self._release(saga_id)

    async def _held(self, saga_id: uuid.UUID) -> Any:
        async with self._database.read() as connection:
            return (
                await connection.execute(
                    select(saga_runs).where(saga_runs.c.id == saga_id, saga_runs.c.owner == self.owner)
                )
            ).first()

    async def _release(self, saga_id: uuid.UUID) -> None:
        async with self._database.transaction() as connection:
            await connection.execute(
                update(saga_runs)
                .where(saga_runs.c.id == saga_id, saga_runs.c.owner == self.owner)
                .values(owner=None, lease_until=None)
            )

    async def _context(self, saga: Saga[Any], row: Any, step: str) -> StepContext[Any]:
        async with self._database.read() as connection:
            done = await connection.execute(
                select(saga_steps.c.name, saga_steps.c.outcome).where(
                    saga_steps.c.saga_id == row.id, saga_steps.c.outcome.is_not(None)
                )
            )
            outcomes = {name: msgspec.json.decode(outcome) for name, outcome in done}
        data = msgspec.json.decode(row.data, type=saga.data)
        return StepContext(saga_id=row.id, step=step, data=data, outcomes=outcomes)

    async def _forward(self, saga: Saga[Any], row: Any) -> None:
        position = row.position
        step = saga.steps[position]
        await self._begin_step(row, position, state="running")
        try:
            outcome = await self._call(saga, row, step, step.action, "forward", f"saga.{step.name}")
        except Exception as exc:
            await self._forward_failed(saga, row, exc)
            return
        last = position + 1 == len(saga.steps)
        await self._end_step(
            row,
            position,
            step_state="done",
            outcome=outcome,
            run={"position": position + 1, "state": COMPLETED if last else RUNNING, "reason": None},
            ended=last,
        )
        if last:
            SAGAS_ENDED.labels(saga.name, COMPLETED).inc()
            log.info("saga %s %s completed", saga.name, row.id)

    async def _call(
        self, saga: Saga[Any], row: Any, step: Step, call: Action, direction: str, points: str
    ) -> Any:
        """One call of a step's action or compensation, with its context, timeout, lease and
        timing; ``points`` names its crash points (``.before`` and ``.after`` the callee's commit)."""
        crash_point(f"{points}.before")
        context = await self._context(saga, row, step.name)
        began = time.perf_counter()
        try:
            async with self._renewing(row.id):
                outcome = await asyncio.wait_for(call(context), timeout=step.timeout_seconds)
        except Exception:
            _observe(saga, step, direction, "failed", began)
            raise
        _observe(saga, step, direction, "done", began)
        crash_point(f"{points}.after")
        return outcome

    async def _forward_failed(self, saga: Saga[Any], row: Any, error: BaseException) -> None:
        position = row.position
        step = saga.steps[position]
        tries = row.tries + 1
        said = _describe(error)
        transient = is_transient(error)
        if position <= saga.pivot and (not transient or (position < saga.pivot and tries >= step.attempts)):
            # Turn around. A transient failure may have taken effect: undo this step too.
            first = position if transient and step.compensation is not None else position - 1
            log.warning("saga %s %s: %s failed (%s); compensating", saga.name, row.id, step.name, said)
            await self._end_step(
                row,
                position,
                step_state="failed",
                error=said,
                run={
                    "state": COMPENSATING,
                    "backward": 1,
                    "position": first,
                    "tries": 0,
                    "reason": f"{step.name}: {said}",
                },
            )
            return
        await self._wait_to_retry(saga, row, position, tries=tries, error=said, step_state="failed")

    async def _compensate(self, saga: Saga[Any], row: Any) -> None:
        position = row.position
        if position < 0:
            await self._finish_compensation(saga, row)
            return
        step = saga.steps[position]
        async with self._database.read() as connection:
            state = await connection.scalar(
                select(saga_steps.c.state).where(
                    saga_steps.c.saga_id == row.id, saga_steps.c.position == position
                )
            )
        if step.compensation is None or state in ("pending", "compensated"):
            await self._move(row, position=position - 1)
            return
        await self._begin_step(row, position, state="compensating")
        points = f"saga.{step.name}.compensation"
        try:
            outcome = await self._call(saga, row, step, step.compensation, "backward", points)
        except Exception as exc:
            await self._wait_to_retry(
                saga, row, position, tries=row.tries + 1, error=_describe(exc), step_state="compensating"
            )
            return
        await self._end_step(
            row,
            position,
            step_state="compensated",
            outcome=outcome,
            run={"position": position - 1, "state": COMPENSATING},
        )

    async def _finish_compensation(self, saga: Saga[Any], row: Any) -> None:
        async with self._database.transaction() as connection:
            await self._update_run(connection, row.id, state=COMPENSATED, ended=True)
        SAGAS_ENDED.labels(saga.name, COMPENSATED).inc()
        log.info("saga %s %s compensated: %s", saga.name, row.id, row.reason)

    async def _wait_to_retry(
        self, saga: Saga[Any], row: Any, position: int, *, tries: int, error: str, step_state: str
    ) -> None:
        step = saga.steps[position]
        delay = backoff_delay(
            tries - 1, initial=saga.backoff_initial_seconds, maximum=saga.backoff_max_seconds
        )
        stuck = tries >= step.attempts
        if stuck and row.state != STUCK:
            SAGAS_STUCK.labels(saga.name).inc()
            log.error("saga %s %s is stuck at %s: %s", saga.name, row.id, step.name, error)
        run: dict[str, Any] = {"tries": tries, "next_at": self._clock() + timedelta(seconds=delay)}
        if stuck:
            run |= {"state": STUCK, "reason": f"{step.name}: {error}"}
        await self._end_step(row, position, step_state=step_state, error=error, run=run)

    @contextlib.asynccontextmanager
    async def _renewing(self, saga_id: uuid.UUID) -> AsyncIterator[None]:
        """Keep the run's lease while a step is called (a step may take longer than a lease)."""

        async def renew() -> None:
            every = self._lease.total_seconds() / 3
            while True:
                await asyncio.sleep(every)
                async with self._database.transaction() as connection:
                    await self._update_run(connection, saga_id, lease_until=self._clock() + self._lease)

        renewer = asyncio.create_task(renew(), name=f"saga-lease:{saga_id}")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, _LostLease):
                await renewer

    # -- the log ------------------------------------------------------------------------------

    async def _begin_step(self, row: Any, position: int, *, state: str) -> None:
        """Written before the call: the step is in hand, one attempt more; the lease renewed."""
        now = self._clock()
        async with self._database.transaction() as connection:
            await self._update_run(connection, row.id, lease_until=now + self._lease)
            await connection.execute(
                update(saga_steps)
                .where(saga_steps.c.saga_id == row.id, saga_steps.c.position == position)
                .values(state=state, attempts=saga_steps.c.attempts + 1, updated_at=now)
            )

    async def _end_step(
        self,
        row: Any,
        position: int,
        *,
        step_state: str,
        run: dict[str, Any],
        outcome: Any = None,
        error: str | None = None,
        ended: bool = False,
    ) -> None:
        """Written after the call: the step's result and where the run goes next, together."""
        now = self._clock()
        values: dict[str, Any] = {"state": step_state, "updated_at": now, "error": error}
        if outcome is not None:
            values["outcome"] = msgspec.json.encode(outcome).decode()
        async with self._database.transaction() as connection:
            changes: dict[str, Any] = {"tries": 0} if run.get("position", position) != position else {}
            changes.update(run)
            await self._update_run(connection, row.id, ended=ended, **changes)
            await connection.execute(
                update(saga_steps)
                .where(saga_steps.c.saga_id == row.id, saga_steps.c.position == position)
                .values(**values)
            )

    async def _move(self, row: Any, *, position: int) -> None:
        async with self._database.transaction() as connection:
            await self._update_run(connection, row.id, position=position, tries=0)

    async def _update_run(
        self, connection: AsyncConnection, saga_id: uuid.UUID, *, ended: bool = False, **values: Any
    ) -> None:
        now = self._clock()
        values["updated_at"] = now
        if ended:
            values |= {"ended_at": now, "open_key": None}
        result = await connection.execute(
            update(saga_runs)
            .where(saga_runs.c.id == saga_id, saga_runs.c.owner == self.owner)
            .values(**values)
        )
        if result.rowcount != 1:
            raise _LostLease


def _observe(saga: Saga[Any], step: Step, direction: str, outcome: str, began: float) -> None:
    SAGA_STEP_DURATION.labels(saga.name, step.name, direction, outcome).observe(time.perf_counter() - began)


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError) and not str(error):
        return "timed out"
    text = str(error) or type(error).__name__
    code = getattr(error, "code", None)
    return (f"{code}: {text}" if isinstance(code, str) else text)[:ERROR_MAX]


def _run_of(row: Any, steps: Sequence[Any]) -> SagaRun:
    return SagaRun(
        id=row.id,
        saga=row.saga,
        key=row.key,
        data=msgspec.json.decode(row.data),
        state=row.state,
        reason=row.reason,
        step=steps[row.position].name if row.state not in ENDED and 0 <= row.position < len(steps) else None,
        steps=[
            SagaStep(
                name=step.name,
                state=step.state,
                attempts=step.attempts,
                outcome=msgspec.json.decode(step.outcome) if step.outcome is not None else None,
                error=step.error,
            )
            for step in steps
        ],
        created_at=row.created_at,
        updated_at=row.updated_at,
        ended_at=row.ended_at,
    )
