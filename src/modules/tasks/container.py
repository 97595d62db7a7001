"""The tasks module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.db import Database
from app.kernel.events import Outbox
from contracts.identity import IdentityApi
from modules.tasks.handlers import TasksHandlers
from modules.tasks.service import TasksService

__all__ = ("TasksContainer",)


class TasksContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    outbox = providers.Dependency(instance_of=Outbox)
    identity: providers.Dependency[IdentityApi] = providers.Dependency()  # local, remote or fake

    service = providers.Singleton(TasksService, database=database, outbox=outbox, identity=identity)
    api = service
    handlers = providers.Singleton(TasksHandlers, tasks=service)
