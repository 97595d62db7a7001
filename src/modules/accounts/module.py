"""The accounts module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.accounts import ACCOUNTS
from contracts.activity import ACTIVITY
from contracts.identity import IDENTITY
from contracts.notifications import NOTIFICATIONS
from contracts.tasks import TASKS
from modules.accounts.container import AccountsContainer
from modules.accounts.http import AccountController

__all__ = ("module",)

module = Module(
    name="accounts",
    summary="A user's account as a whole: closing it (a saga over four modules), exporting it",
    provides=ACCOUNTS,
    container=AccountsContainer,
    api=AccountsContainer.service,
    requires={
        IDENTITY: AccountsContainer.identity,
        TASKS: AccountsContainer.tasks,
        NOTIFICATIONS: AccountsContainer.notifications,
        ACTIVITY: AccountsContainer.activity,
    },
    routes=(AccountController,),
    route_dependencies={"accounts": AccountsContainer.service},
    orchestrator=AccountsContainer.orchestrator,
)
