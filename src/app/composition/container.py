"""The composition root: one container per module, wired to the kernel and to each other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dependency_injector import containers, providers

from app.composition.topology import Placement, Remotes, connect_remotes, place
from app.kernel.config import ConfigError, Settings
from app.kernel.db import Database, pool_sizes
from app.kernel.deployment import record_deployment, recorded_deployment
from app.kernel.events import EventConsumer, EventRuntime, Outbox, OutboxRelay, Subscription, bus_for
from app.kernel.migrations import Migrations, MigrationState
from app.kernel.module import EventHandler, Module
from app.kernel.security import AccessTokens

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
    outbox: Outbox

    @property
    def name(self) -> str:
        return self.module.name


class Composition:
    """The composed application: settings, the kernel container and every composed module.

    A plain class on purpose: Litestar hands it to handlers as a dependency and would
    try to validate a dataclass field by field.
    """

    __slots__ = ("container", "events", "modules", "placement", "remotes", "settings")

    def __init__(
        self,
        *,
        settings: Settings,
        container: AppContainer,
        modules: tuple[ComposedModule, ...],
        placement: Placement,
        remotes: Remotes,
        events: EventRuntime,
    ) -> None:
        self.settings = settings
        self.container = container
        self.modules = modules
        self.placement = placement
        self.remotes = remotes
        self.events = events

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

    async def check_connection_budget(self) -> None:
        """Refuse a ``database.max_connections`` the PostgreSQL server cannot give."""
        budget = self.settings.database.max_connections
        for composed in self.modules:
            limit = await composed.database.server_connection_limit()
            if limit is not None and budget > limit:
                where = composed.database.url.render_as_string(hide_password=True)
                raise ConfigError(
                    f"database.max_connections: {budget}, but the server at {where} accepts "
                    f"{limit} connections from Tessera's role (its max_connections less the reserved "
                    "ones); lower database.max_connections or raise the server's max_connections"
                )

    async def deployment(self) -> uuid.UUID | None:
        """The deployment the local modules' databases belong to; None before the first upgrade."""
        recorded = {m.name: await recorded_deployment(m.database) for m in self.modules}
        found = {deployment for deployment in recorded.values() if deployment is not None}
        if len(found) > 1:
            listed = ", ".join(f"{name}: {deployment}" for name, deployment in recorded.items())
            raise ConfigError(f"the modules' databases belong to different deployments ({listed})")
        return found.pop() if found else None

    async def upgrade(self, module: str | None = None) -> uuid.UUID:
        """Migrate every module's database (or one) and record the deployment id in each."""
        deployment = await self.deployment() or uuid.uuid4()
        for composed in self.modules:
            if module is None or composed.name == module:
                await composed.migrations.upgrade()
                await record_deployment(composed.database, deployment)
        return deployment

    async def aclose(self) -> None:
        await self.events.stop()
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
        from app.composition.catalog import MODULES  # imported here: a module's own tests compose without it

        catalog = MODULES
    names = {module.name for module in catalog}
    if unknown := sorted(set(settings.database.modules) - names):
        raise ConfigError(f"database.modules.{unknown[0]}: no such module (modules: {sorted(names)})")
    placement = place(settings, group, catalog)
    for module in catalog:
        if undeclared := [e.__name__ for e in module.publishes if e not in module.provides.events]:
            raise CompositionError(
                f"module {module.name} publishes {undeclared}, which its contract "
                f"{module.provides.name!r} does not declare"
            )
    remotes = connect_remotes(settings, placement)
    app = AppContainer(settings=providers.Object(settings))
    pools = pool_sizes(settings, [m.name for m in placement.local], processes=placement.processes(settings))
    composed = [
        ComposedModule(
            module=module,
            container=module.container(),
            database=(database := Database.for_module(settings, module.name, pool_size=pools[module.name])),
            migrations=Migrations(database),
            outbox=Outbox(module=module.name, database=database, publishes=module.publishes),
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
            "outbox": providers.Object(target.outbox),
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
        settings=settings,
        container=app,
        modules=tuple(composed),
        placement=placement,
        remotes=remotes,
        events=_event_runtime(settings, placement, catalog, composed),
    )


def _event_runtime(
    settings: Settings, placement: Placement, catalog: Sequence[Module], composed: Sequence[ComposedModule]
) -> EventRuntime:
    """This process's relays (one per local publisher) and consumers (one per local consumer).

    Every process declares the consumers of the whole catalog, so a broker keeps events
    for a consumer whose process has not started yet.
    """
    events = settings.events
    if placement.is_split and events.bus == "inprocess":
        raise ConfigError(
            "events.bus: a split topology needs a broker between its processes (nats or rabbitmq)"
        )
    bus = bus_for(events)
    relays = [
        OutboxRelay(outbox=m.outbox, database=m.database, bus=bus, settings=events)
        for m in composed
        if m.module.publishes
    ]
    consumers = [
        EventConsumer(
            module=m.name,
            database=m.database,
            subscriptions={
                event_class.type_name(): Subscription(event_class, _handler(m.container, method))
                for event_class, method in m.module.consumes.items()
            },
        )
        for m in composed
        if m.module.consumes
    ]
    declared = {
        module.name: sorted(e.type_name() for e in module.consumes) for module in catalog if module.consumes
    }
    return EventRuntime(bus=bus, settings=events, relays=relays, consumers=consumers, declared=declared)


def _handler(container: containers.Container, method: EventHandler) -> Any:
    """The handler ``method`` names, bound to the module's ``handlers`` when first called.

    Checked now, not at the first delivery: ``handlers`` must provide a class with that method.
    """
    name = method.__name__
    provided = getattr(getattr(container, "handlers", None), "provides", None)
    if not isinstance(provided, type) or not hasattr(provided, name):
        raise CompositionError(f"{method.__qualname__}: not a method of the container's `handlers` provider")

    async def handle(event: Any) -> None:
        await getattr(container.handlers(), name)(event)

    return handle
