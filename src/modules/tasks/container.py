"""The tasks module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.db import Database
from contracts.identity import IdentityApi
from modules.tasks.service import TasksService

__all__ = ("TasksContainer",)


class TasksContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    identity: providers.Dependency[IdentityApi] = providers.Dependency()  # local, remote or fake

    service = providers.Singleton(TasksService, database=database, identity=identity)
    api = service
