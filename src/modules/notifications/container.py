"""The notifications module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.db import Database
from modules.notifications.handlers import NotificationHandlers
from modules.notifications.service import NotificationsService

__all__ = ("NotificationsContainer",)


class NotificationsContainer(containers.DeclarativeContainer):
    database = providers.Dependency(instance_of=Database)

    service = providers.Singleton(NotificationsService, database=database)
    api = service
    handlers = providers.Singleton(NotificationHandlers, service=service)
