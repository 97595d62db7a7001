"""The notifications module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.db import Database
from app.kernel.unit_of_work import UnitsOfWork
from modules.notifications.handlers import NotificationHandlers
from modules.notifications.repository import NotificationsUnit
from modules.notifications.service import NotificationsService

__all__ = ("NotificationsContainer",)


class NotificationsContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)

    units = providers.Singleton(UnitsOfWork, NotificationsUnit, database=database)  # publishes nothing
    service = providers.Singleton(NotificationsService, units=units)
    handlers = providers.Singleton(NotificationHandlers, service=service)
