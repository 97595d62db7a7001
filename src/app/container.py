"""The composition root: one container per module, wired to the kernel and to each other."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dependency_injector import containers, providers

from app.kernel.config import ConfigError, Settings
from app.kernel.db import Database
from app.kernel.migrations import Migrations, MigrationState
from app.kernel.module import Module
from app.kernel.security import AccessTokens
from app.topology import Placement, Remotes, connect_remotes, place

__all__ = ("AppContainer", "Composition", "ComposedModule", "CompositionError", "compose")


class CompositionError(Exception):
    """The modules cannot be put together: a requirement is missing or misnamed."""


class AppContainer(containers.DeclarativeContainer):
    """The kernel services every module may ask for by name."""

    settings = providers.Dependency(instance_of=Settings)
    access_tokens = providers.Singleton(AccessTokens.from_settings, settings)


@dataclass(frozen=True, slots=True)
class ComposedModule:
    module: Module
    container: containers.Container
    database: Database
    migrations: Migrations

    @property
    def name(self) -> str:
        return self.module.name


class Composition:
    """The composed application: settings, the kernel container and every composed module.

    A plain class on purpose: Litestar hands it to handlers as a dependency and would
    try to validate a dataclass field by field.
    """

    __slots__ = ("container", "modules", "placement", "remotes", "settings")

    def __init__(
        self,
        *,
        settings: Settings,
        container: AppContainer,
        modules: tuple[ComposedModule, ...],
        placement: Placement,
        remotes: Remotes,
    ) -> None:
        self.settings = settings
        self.container = container
        self.modules = modules
        self.placement = placement
        self.remotes = remotes

    @property
    def access_tokens(self) -> AccessTokens:
        return self.container.access_tokens()

    def module(self, name: str) -> ComposedModule:
        for composed in self.modules:
            if composed.name == name:
                return composed
        raise KeyError(name)

    async def migration_states(self) -> list[MigrationState]:
        return list(await asyncio.gather(*(m.migrations.state() for m in self.modules)))

    async def upgrade(self, module: str | None = None) -> None:
        for composed in self.modules:
            if module is None or composed.name == module:
                await composed.migrations.upgrade()

    async def aclose(self) -> None:
        await asyncio.gather(*(m.database.dispose() for m in self.modules), self.remotes.aclose())


def compose(
    settings: Settings,
    catalog: Sequence[Module] | None = None,
    *,
    external: Mapping[str, object] | None = None,
    group: str | None = None,
) -> Composition:
    """Build every local module's container and satisfy each of its dependencies by name.

    ``catalog`` defaults to every module of the application; ``group`` picks the modules
    of one topology group, and every other module's contract is served by a remote
    adapter. ``external`` supplies implementations of contracts no local module
    provides (a fake in a module's own tests), keyed by contract name.
    """
    if catalog is None:
        from app.catalog import MODULES  # imported here: a module's own tests compose without it

        catalog = MODULES
    names = {module.name for module in catalog}
    if unknown := sorted(set(settings.database.modules) - names):
        raise ConfigError(f"database.modules.{unknown[0]}: no such module (modules: {sorted(names)})")
    placement = place(settings, group, catalog)
    remotes = connect_remotes(settings, placement)
    app = AppContainer(settings=providers.Object(settings))
    composed = [
        ComposedModule(
            module=module,
            container=module.container(),
            database=(database := Database.for_module(settings, module.name)),
            migrations=Migrations(database),
        )
        for module in placement.local
    ]
    implementations: dict[str, Any] = {
        name: providers.Object(implementation)
        for name, implementation in {**remotes.implementations, **(external or {})}.items()
    }
    implementations.update({m.module.provides.name: m.container.api for m in composed})
    for target in composed:
        offered: dict[str, Any] = {
            "settings": app.settings,
            "access_tokens": app.access_tokens,
            "database": providers.Object(target.database),
        }
        for contract in target.module.requires:
            if contract.name not in implementations:
                raise CompositionError(
                    f"module {target.name} requires contract {contract.name!r}, which no module provides"
                )
            offered[contract.name] = implementations[contract.name]
        for name, dependency in target.container.dependencies.items():
            if name not in offered:
                raise CompositionError(
                    f"module {target.name}: its container asks for {name!r}; "
                    f"a module may ask for {sorted(offered)}"
                )
            dependency.override(offered[name])
    return Composition(
        settings=settings, container=app, modules=tuple(composed), placement=placement, remotes=remotes
    )
