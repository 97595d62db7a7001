"""The identity module's wiring."""

from __future__ import annotations

from dependency_injector import containers, providers

from app.kernel.config import Settings
from app.kernel.db import Database
from app.kernel.events import Outbox
from app.kernel.security import AccessTokens, Passwords
from app.kernel.throttle import Throttles
from app.kernel.unit_of_work import UnitsOfWork
from modules.identity.repository import IdentityUnit
from modules.identity.service import IdentityService

__all__ = ("IdentityContainer",)


class IdentityContainer(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    database = providers.Dependency(instance_of=Database)
    outbox = providers.Dependency(instance_of=Outbox)
    access_tokens = providers.Dependency(instance_of=AccessTokens)
    throttles = providers.Dependency(instance_of=Throttles)

    units = providers.Singleton(UnitsOfWork, IdentityUnit, database=database, outbox=outbox)
    passwords = providers.Singleton(Passwords, settings.provided.security.password_hash)
    service = providers.Singleton(
        IdentityService,
        units=units,
        passwords=passwords,
        access_tokens=access_tokens,
        failed_logins=throttles.provided.failed_logins,
        refresh_token_ttl_seconds=settings.provided.security.refresh_token_ttl_seconds,
    )
