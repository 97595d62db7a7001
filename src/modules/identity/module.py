"""The identity module's manifest."""

from __future__ import annotations

from app.kernel.module import Module
from contracts.identity import (
    IDENTITY,
    AccountClosed,
    AdministratorGranted,
    UserDeactivated,
    UserProfileChanged,
    UserReactivated,
    UserRegistered,
)
from modules.identity.cli import users
from modules.identity.container import IdentityContainer
from modules.identity.http import AdminUsersController, AuthController, UsersController

__all__ = ("module",)

module = Module(
    name="identity",
    summary="Users, credentials and tokens",
    provides=IDENTITY,
    container=IdentityContainer,
    api=IdentityContainer.service,
    routes=(UsersController, AuthController, AdminUsersController),
    route_dependencies={"identity": IdentityContainer.service},
    units=IdentityContainer.units,
    publishes=(
        UserRegistered,
        UserDeactivated,
        UserProfileChanged,
        UserReactivated,
        AdministratorGranted,
        AccountClosed,
    ),
    commands=(users,),
)
