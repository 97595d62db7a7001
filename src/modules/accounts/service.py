"""The accounts service: account closure, a saga over four modules' contracts, and the export.

The closure saga, in the classic shape — compensatable steps, one pivot, retriable steps:

====  ==============  =====================================  ===============================
step  module          action                                 compensation
====  ==============  =====================================  ===============================
1     identity        mark the account closing               reopen it
2     tasks           hand open work to the successor        hand back what nobody changed
3     identity        erase the account (**pivot**)          — (no way back from here)
4     notifications   delete the user's inbox                — (retried until it succeeds)
5     activity        erase the user's personal data         — (retried until it succeeds)
====  ==============  =====================================  ===============================

Each step calls one idempotent contract method with the step's key, through whatever the
composition gave this module for that contract: the local service in one process, the
remote adapter in a split. The definition is the same in both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import msgspec

from app.kernel.clock import utcnow
from app.kernel.sagas import Saga, Step, StepContext
from contracts import PAGE_LIMIT_MAX, Principal
from contracts.accounts import (
    AccountExport,
    AccountsApi,
    Closure,
    ClosureNotFound,
    ClosureRequest,
    ClosureState,
    ClosureStep,
    NotPermittedOnAccount,
    SuccessorIsTheUser,
)
from contracts.activity import ActivityApi, ActivityEntry, ActivityQuery
from contracts.identity import IdentityApi, NotPermittedOnUser
from contracts.notifications import Notification, NotificationQuery, NotificationsApi
from contracts.tasks import Task, TaskQuery, TasksApi

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from app.kernel.sagas import Orchestrator, SagaRun

__all__ = ("AccountsService", "ClosureData", "closure_saga")

T = TypeVar("T")

CLOSURE = "account-closure"
CLOSED_USER_GRACE_SECONDS = 15 * 60  # the closing user may still read how their closure ended


class ClosureData(msgspec.Struct, frozen=True, kw_only=True):
    """The closure saga's input, as its log keeps it."""

    user_id: UUID
    successor_id: UUID
    requested_by: UUID


def closure_saga(
    *,
    identity: IdentityApi,
    tasks: TasksApi,
    notifications: NotificationsApi,
    activity: ActivityApi,
) -> Saga[ClosureData]:
    """The definition: plain code over the four contracts (see the module's table above)."""

    async def close(ctx: StepContext[ClosureData]) -> Any:
        return await identity.close_account(ctx.data.user_id, ctx.step_key)

    async def reopen(ctx: StepContext[ClosureData]) -> Any:
        return await identity.reopen_account(ctx.data.user_id, ctx.step_key)

    async def hand_over(ctx: StepContext[ClosureData]) -> Any:
        return await tasks.hand_over(ctx.data.user_id, ctx.data.successor_id, ctx.step_key)

    async def hand_back(ctx: StepContext[ClosureData]) -> Any:
        return await tasks.hand_back(ctx.step_key)

    async def erase_account(ctx: StepContext[ClosureData]) -> Any:
        return await identity.erase_account(ctx.data.user_id, ctx.data.requested_by, ctx.step_key)

    async def delete_inbox(ctx: StepContext[ClosureData]) -> Any:
        return await notifications.delete_inbox(ctx.data.user_id, ctx.step_key)

    async def erase_activity(ctx: StepContext[ClosureData]) -> Any:
        return await activity.erase_user(ctx.data.user_id, ctx.step_key)

    return Saga(
        name=CLOSURE,
        data=ClosureData,
        steps=(
            Step(name="close_account", action=close, compensation=reopen),
            Step(name="hand_over_tasks", action=hand_over, compensation=hand_back),
            Step(name="erase_account", action=erase_account, pivot=True, attempts=5),
            Step(name="delete_inbox", action=delete_inbox, attempts=5),
            Step(name="erase_activity", action=erase_activity, attempts=5),
        ),
    )


class AccountsService(AccountsApi):
    def __init__(
        self,
        *,
        orchestrator: Orchestrator,
        saga: Saga[ClosureData],
        identity: IdentityApi,
        tasks: TasksApi,
        notifications: NotificationsApi,
        activity: ActivityApi,
    ) -> None:
        self._orchestrator = orchestrator
        self._saga = saga
        self._identity = identity
        self._tasks = tasks
        self._notifications = notifications
        self._activity = activity

    async def close_account(self, principal: Principal, request: ClosureRequest) -> Closure:
        user_id = request.user_id or principal.user_id
        if user_id != principal.user_id and not await self._is_administrator(principal.user_id):
            raise NotPermittedOnAccount("only an administrator may close another user's account")
        if request.successor_id == user_id:
            raise SuccessorIsTheUser("name another user to take the account's work over")
        data = ClosureData(user_id=user_id, successor_id=request.successor_id, requested_by=principal.user_id)
        run, _ = await self._orchestrator.begin(self._saga, key=str(user_id), data=data)
        return _closure(run)

    async def closure(self, principal: Principal, closure_id: UUID) -> Closure:
        run = await self._orchestrator.get(closure_id)
        if run is None or run.saga != CLOSURE:
            raise ClosureNotFound(f"no account closure {closure_id}")
        closure = _closure(run)
        if closure.user_id == principal.user_id and _still_theirs(closure):
            return closure
        if closure.user_id != principal.user_id and await self._is_administrator(principal.user_id):
            return closure
        raise ClosureNotFound(f"no account closure {closure_id}")

    async def export(self, principal: Principal) -> AccountExport:
        return AccountExport(
            exported_at=utcnow(),
            account=await self._identity.account_record(principal.user_id),
            tasks=await _every(lambda cursor: self._tasks_page(principal, cursor)),
            notifications=await _every(lambda cursor: self._notifications_page(principal, cursor)),
            activity=await _every(lambda cursor: self._activity_page(principal, cursor)),
        )

    async def _tasks_page(self, principal: Principal, cursor: str | None) -> tuple[list[Task], str | None]:
        page = await self._tasks.list_tasks(principal, TaskQuery(limit=PAGE_LIMIT_MAX, cursor=cursor))
        return page.items, page.next_cursor

    async def _notifications_page(
        self, principal: Principal, cursor: str | None
    ) -> tuple[list[Notification], str | None]:
        query = NotificationQuery(limit=PAGE_LIMIT_MAX, cursor=cursor)
        page = await self._notifications.list_notifications(principal, query)
        return page.items, page.next_cursor

    async def _activity_page(
        self, principal: Principal, cursor: str | None
    ) -> tuple[list[ActivityEntry], str | None]:
        page = await self._activity.user_feed(principal, ActivityQuery(limit=PAGE_LIMIT_MAX, cursor=cursor))
        return page.items, page.next_cursor

    async def _is_administrator(self, user_id: UUID) -> bool:
        try:
            await self._identity.require_administrator(user_id)
        except NotPermittedOnUser:
            return False
        return True


async def _every(page: Callable[[str | None], Awaitable[tuple[list[T], str | None]]]) -> list[T]:
    found: list[T] = []
    cursor: str | None = None
    while True:
        items, cursor = await page(cursor)
        found.extend(items)
        if cursor is None:
            return found


def _still_theirs(closure: Closure) -> bool:
    """The closing user reads their closure while it runs, and how it ended for a while after."""
    if closure.ended_at is None:
        return True
    return (utcnow() - closure.ended_at).total_seconds() <= CLOSED_USER_GRACE_SECONDS


def _closure(run: SagaRun) -> Closure:
    data = msgspec.convert(run.data, ClosureData)
    return Closure(
        id=run.id,
        user_id=data.user_id,
        successor_id=data.successor_id,
        state=ClosureState(run.state),
        steps=[
            ClosureStep(name=step.name, state=step.state, attempts=step.attempts, outcome=step.outcome)
            for step in run.steps
        ],
        reason=run.reason,
        started_at=run.created_at,
        ended_at=run.ended_at,
    )
