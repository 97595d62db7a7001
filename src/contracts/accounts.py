"""The accounts contract: what a user can do with their account as a whole — close it, take it home.

Closing an account spans four modules (identity, tasks, notifications, activity), so the
accounts module orchestrates it as a saga; none of those modules knows accounts exists.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import Contract, ContractError, NotPermitted, Principal, idempotent
from contracts.activity import ActivityEntry
from contracts.identity import AccountRecord
from contracts.notifications import Notification
from contracts.tasks import Task

__all__ = (
    "ACCOUNTS",
    "AccountExport",
    "AccountsApi",
    "Closure",
    "ClosureNotFound",
    "ClosureRequest",
    "ClosureState",
    "ClosureStep",
    "NotPermittedOnAccount",
    "SuccessorIsTheUser",
)


class ClosureRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Close ``user_id``'s account (the caller's own if left out; another's: administrators
    only), handing their open tasks to ``successor_id``."""

    successor_id: UUID
    user_id: UUID | None = None


class ClosureState(enum.StrEnum):
    RUNNING = "running"
    COMPENSATING = "compensating"  # turning back: undoing what was done, newest first
    COMPENSATED = "compensated"  # ended with the account open again; ``reason`` says why
    COMPLETED = "completed"  # ended with the account closed and its personal data erased
    STUCK = "stuck"  # a step keeps failing past its bound: retried, and waiting for an operator


class ClosureStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One step: ``state`` pending, running, done, failed, compensating or compensated;
    ``outcome`` what the step (or, once undone, its compensation) answered."""

    name: str
    state: str
    attempts: int
    outcome: Any = None


class Closure(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: UUID
    user_id: UUID
    successor_id: UUID
    state: ClosureState
    steps: list[ClosureStep]
    reason: str | None
    started_at: datetime
    ended_at: datetime | None


class AccountExport(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything Tessera holds about the user, gathered from every module through its contract."""

    exported_at: datetime
    account: AccountRecord
    tasks: list[Task]  # owned or assigned
    notifications: list[Notification]
    activity: list[ActivityEntry]  # what happened to their tasks and what they did


class ClosureNotFound(ContractError):
    """No such closure — or one the caller may not see: the two look the same."""

    code = "accounts.closure_not_found"
    status = 404
    title = "No such account closure"


class NotPermittedOnAccount(NotPermitted):
    code = "accounts.not_permitted"
    title = "Only an administrator may close another user's account"


class SuccessorIsTheUser(ContractError):
    code = "accounts.successor_is_the_user"
    status = 422
    title = "An account's successor must be another user"


@runtime_checkable
class AccountsApi(Protocol):
    async def close_account(self, principal: Principal, request: ClosureRequest) -> Closure:
        """Start closing the account (or find the closure under way): answered at once, run after.

        Whether the successor can take the work is the saga's to find out, since that can
        change while it runs: an inactive successor ends the closure ``compensated``.
        """
        ...

    @idempotent
    async def closure(self, principal: Principal, closure_id: UUID) -> Closure:
        """A closure, for an administrator or the user it closes; ClosureNotFound for anyone else."""
        ...

    @idempotent
    async def export(self, principal: Principal) -> AccountExport:
        """Everything Tessera holds about the principal."""
        ...


ACCOUNTS: Contract[AccountsApi] = Contract(
    name="accounts",
    version="1.0",
    api=AccountsApi,
    errors=(ClosureNotFound, NotPermittedOnAccount, SuccessorIsTheUser),
)
