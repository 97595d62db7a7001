"""The accounts module's wiring: its orchestrator runs the closure saga over four contracts."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.config import Settings
from app.kernel.db import Database
from app.kernel.sagas import Orchestrator
from contracts.activity import ActivityApi
from contracts.identity import IdentityApi
from contracts.notifications import NotificationsApi
from contracts.tasks import TasksApi
from modules.accounts.service import AccountsService, closure_saga

__all__ = ("AccountsContainer",)


class AccountsContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    database = providers.Dependency(instance_of=Database)
    identity: providers.Dependency[IdentityApi] = providers.Dependency()
    tasks: providers.Dependency[TasksApi] = providers.Dependency()
    notifications: providers.Dependency[NotificationsApi] = providers.Dependency()
    activity: providers.Dependency[ActivityApi] = providers.Dependency()

    saga = providers.Singleton(
        closure_saga, identity=identity, tasks=tasks, notifications=notifications, activity=activity
    )
    orchestrator = providers.Singleton(
        Orchestrator,
        module="accounts",
        database=database,
        sagas=providers.List(saga),
        poll_seconds=settings.provided.sagas.poll_seconds,
        lease_seconds=settings.provided.sagas.lease_seconds,
    )
    service = providers.Singleton(
        AccountsService,
        orchestrator=orchestrator,
        saga=saga,
        identity=identity,
        tasks=tasks,
        notifications=notifications,
        activity=activity,
    )
