"""The tasks module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.config import Settings
from app.kernel.db import Database
from app.kernel.events import Outbox
from app.kernel.unit_of_work import UnitsOfWork
from contracts.identity import IdentityApi
from modules.tasks.handlers import TasksHandlers
from modules.tasks.profiles import Profiles
from modules.tasks.repository import TasksUnit
from modules.tasks.service import TasksService

__all__ = ("TasksContainer",)


class TasksContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    database = providers.Dependency(instance_of=Database)
    outbox = providers.Dependency(instance_of=Outbox)
    identity: providers.Dependency[IdentityApi] = providers.Dependency()  # local, remote or fake

    units = providers.Singleton(UnitsOfWork, TasksUnit, database=database, outbox=outbox)
    service = providers.Singleton(TasksService, units=units, identity=identity)
    profiles = providers.Singleton(Profiles, identity, ttl_seconds=settings.provided.cache.profile_seconds)
    handlers = providers.Singleton(TasksHandlers, tasks=service, profiles=profiles)
