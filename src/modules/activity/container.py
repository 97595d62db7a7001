"""The activity module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.db import Database
from app.kernel.events.projections import Projector
from app.kernel.events.store import EventStore
from app.kernel.unit_of_work import UnitsOfWork
from contracts.identity import IdentityApi
from contracts.tasks import TasksApi
from modules.activity.handlers import ActivityHandlers
from modules.activity.projections import projections
from modules.activity.repository import ActivityUnit
from modules.activity.service import ActivityService

__all__ = ("ActivityContainer",)


class ActivityContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)
    tasks: providers.Dependency[TasksApi] = providers.Dependency()  # who may see a task's history
    identity: providers.Dependency[IdentityApi] = providers.Dependency()  # who is an administrator

    store = providers.Singleton(EventStore, database=database)
    units = providers.Singleton(  # publishes nothing
        UnitsOfWork, providers.Factory(ActivityUnit, store=store).provider, database=database
    )
    projector = providers.Singleton(
        Projector, database=database, store=store, projections=providers.Callable(projections)
    )
    service = providers.Singleton(ActivityService, units=units, tasks=tasks, identity=identity)
    handlers = providers.Singleton(ActivityHandlers, service=service)
