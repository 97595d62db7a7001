"""The composition root: one container per module, wired to the kernel and to each other."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from dependency_injector import containers, providers

from app.composition.topology import Placement, Remotes, connect_remotes, place
from app.kernel.config import ConfigError, Settings
from app.kernel.db import Database, pool_sizes
from app.kernel.deployment import record_deployment, recorded_deployment
from app.kernel.events import EventConsumer, EventRuntime, Outbox, OutboxRelay, Subscription, bus_for
from app.kernel.events.projections import Projector
from app.kernel.migrations import Migrations, MigrationState
from app.kernel.module import EventHandler, Module
from app.kernel.rpc import SimulatedNetwork, counted, simulated
from app.kernel.sagas import Orchestrator
from app.kernel.security import AccessTokens, RevokedSessions
from app.kernel.signing_keys import JWKS_PATH, PublishedKeys
from app.kernel.throttle import Throttles
from contracts import Contract
from contracts.identity import IDENTITY

ApiT = TypeVar("ApiT")

__all__ = ("AppContainer", "Composition", "ComposedModule", "CompositionError", "compose")


class CompositionError(Exception):
    """The modules cannot be put together: a requirement is missing or misnamed."""


class AppContainer(containers.DeclarativeContainer):
    """The kernel services a module's container may declare a dependency on, by type."""

    settings = providers.Dependency(instance_of=Settings)
    access_tokens = providers.Dependency(instance_of=AccessTokens)  # signed or verified here: compose()
    throttles = providers.Singleton(
        Throttles, settings.provided.throttle, namespace=settings.provided.events.namespace
    )


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

    def provider(self, declared: providers.Provider[Any] | None, what: str) -> providers.Provider[Any]:
        """This container's own copy of ``declared``, a provider of the module's container class."""
        if declared is None:
            raise CompositionError(f"module {self.name}: its manifest names no {what}")
        for name, provider in self.module.container.providers.items():
            if provider is declared:
                bound: providers.Provider[Any] = getattr(self.container, name)
                return bound
        raise CompositionError(
            f"module {self.name}: its manifest's {what} is not a provider of {self.module.container.__name__}"
        )

    @property
    def api(self) -> providers.Provider[Any]:
        return self.provider(self.module.api, "api")


class Composition:
    """The composed application: settings, the kernel container and every composed module.

    A plain class on purpose: Litestar hands it to handlers as a dependency and would
    try to validate a dataclass field by field.
    """

    __slots__ = (
        "container",
        "contracts",
        "events",
        "modules",
        "network",
        "placement",
        "published_keys",
        "remotes",
        "revoked_sessions",
        "settings",
    )

    def __init__(
        self,
        *,
        settings: Settings,
        container: AppContainer,
        modules: tuple[ComposedModule, ...],
        placement: Placement,
        remotes: Remotes,
        events: EventRuntime,
        revoked_sessions: RevokedSessions | None,
        published_keys: PublishedKeys | None,
        contracts: Mapping[str, providers.Provider[Any]],
        network: SimulatedNetwork | None = None,
    ) -> None:
        self.settings = settings
        self.contracts = contracts
        self.network = network  # `simulate`: the network this process pretends its calls cross
        self.revoked_sessions = revoked_sessions
        self.published_keys = published_keys
        self.container = container
        self.modules = modules
        self.placement = placement
        self.remotes = remotes
        self.events = events

    @property
    def access_tokens(self) -> AccessTokens:
        return self.container.access_tokens()

    @property
    def throttles(self) -> Throttles:
        return self.container.throttles()

    def client(self, contract: Contract[ApiT]) -> ApiT:
        """The contract's implementation here: a local module's service or a remote adapter."""
        provider = self.contracts.get(contract.name)
        if provider is None:
            raise CompositionError(f"no module provides contract {contract.name!r} here")
        implementation: ApiT = provider()
        return implementation

    @property
    def checks_user_tokens(self) -> bool:
        """A process with modules or the web UI checks users' tokens; a pure API gateway does not."""
        return bool(self.modules) or self.settings.ui.enabled

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

    async def upgrade(
        self, module: str | None = None, *, on_migrated: Callable[[str], None] | None = None
    ) -> uuid.UUID:
        """Migrate every module's database (or one) and record the deployment id in each.

        ``on_migrated`` is told each module's name once its database is done (a progress bar).
        """
        for composed in self.modules:  # (every module's: the deployment is read from them all)
            await composed.migrations.prepare()
        deployment = await self.deployment() or uuid.uuid4()
        for composed in self.modules:
            if module is None or composed.name == module:
                await composed.migrations.upgrade()
                await record_deployment(composed.database, deployment)
                if on_migrated is not None:
                    on_migrated(composed.name)
        return deployment

    @property
    def projectors(self) -> list[Projector]:
        """The projectors of the local modules that keep an event store."""
        return [m.provider(m.module.projector, "projector")() for m in self.modules if m.module.projector]

    @property
    def orchestrators(self) -> list[Orchestrator]:
        """The saga orchestrators of the local modules that run sagas."""
        return [
            m.provider(m.module.orchestrator, "orchestrator")() for m in self.modules if m.module.orchestrator
        ]

    async def start(self) -> None:
        """Background work: event relays and consumers, projections, sagas, the revocation poll."""
        if self.published_keys is not None and self.checks_user_tokens:
            await self.published_keys.start()
        if self.revoked_sessions is not None:
            await self.revoked_sessions.start()
        await self.events.start()
        for projector in self.projectors:
            await projector.start()
        for orchestrator in self.orchestrators:
            await orchestrator.start()

    async def aclose(self) -> None:
        for orchestrator in self.orchestrators:
            await orchestrator.stop()
        for projector in self.projectors:
            await projector.stop()
        if self.revoked_sessions is not None:
            await self.revoked_sessions.stop()
        if self.published_keys is not None:
            await self.published_keys.stop()
        await self.events.stop()
        await asyncio.gather(
            *(m.database.dispose() for m in self.modules), self.remotes.aclose(), self.throttles.aclose()
        )


def compose(
    settings: Settings,
    catalog: Sequence[Module] | None = None,
    *,
    external: Mapping[str, object] | None = None,
    group: str | None = None,
) -> Composition:
    """Build every local module's container and satisfy each of its dependencies.

    ``catalog`` defaults to every module of the application; ``group`` picks the modules
    of one topology group, and every other module's contract is served by a remote
    adapter. ``external`` supplies implementations of contracts no local module
    provides (a fake in a module's own tests), keyed by contract name.
    """
    catalog = _catalog(catalog)
    _check_manifests(settings, catalog)
    placement = place(settings, group, catalog)
    remotes = connect_remotes(settings, placement)
    published = _published_keys(settings, placement, remotes)
    tokens = (
        AccessTokens.verified_here(settings, published) if published else AccessTokens.signed_here(settings)
    )
    kernel = AppContainer(settings=providers.Object(settings), access_tokens=providers.Object(tokens))
    composed = _build(settings, placement)
    contracts = _implementations(composed, remotes, external or {})
    boundaries = _Boundaries.of(settings, catalog, composed)
    for target in composed:
        _wire(target, kernel, boundaries.as_seen_from(target.name, contracts))
    contracts = boundaries.as_seen_from(None, contracts)  # the web pages', in the gateway if there is one
    return Composition(
        settings=settings,
        container=kernel,
        modules=tuple(composed),
        placement=placement,
        remotes=remotes,
        events=_event_runtime(settings, placement, catalog, composed),
        revoked_sessions=_revoked_sessions(settings, contracts) if composed or settings.ui.enabled else None,
        published_keys=published,
        contracts=contracts,
        network=boundaries.network,
    )


def _catalog(catalog: Sequence[Module] | None) -> Sequence[Module]:
    if catalog is not None:
        return catalog
    from app.composition.catalog import MODULES  # here: a module's own tests compose without it

    return MODULES


def _check_manifests(settings: Settings, catalog: Sequence[Module]) -> None:
    names = {module.name for module in catalog}
    if unknown := sorted(set(settings.database.modules) - names):
        raise ConfigError(f"database.modules.{unknown[0]}: no such module (modules: {sorted(names)})")
    for module in catalog:
        if undeclared := [e.__name__ for e in module.publishes if e not in module.provides.events]:
            raise CompositionError(
                f"module {module.name} publishes {undeclared}, which its contract "
                f"{module.provides.name!r} does not declare"
            )


def _build(settings: Settings, placement: Placement) -> list[ComposedModule]:
    """Each local module's container, database (with its share of connections), migrations and outbox."""
    pools = pool_sizes(settings, [m.name for m in placement.local], processes=placement.processes(settings))
    return [
        ComposedModule(
            module=module,
            container=module.container(),
            database=(database := Database.for_module(settings, module.name, pool_size=pools[module.name])),
            migrations=Migrations(database),
            outbox=Outbox(module=module.name, database=database, publishes=module.publishes),
        )
        for module in placement.local
    ]


def _implementations(
    composed: Sequence[ComposedModule], remotes: Remotes, external: Mapping[str, object]
) -> dict[str, providers.Provider[Any]]:
    """Each contract's implementation here: a local module's service, a remote adapter or a fake."""
    found: dict[str, providers.Provider[Any]] = {
        name: providers.Object(implementation)
        for name, implementation in {**remotes.implementations, **external}.items()
    }
    found.update({m.module.provides.name: m.api for m in composed})
    return found


@dataclass(frozen=True, slots=True)
class _Boundaries:
    """Each call across a module boundary is counted; under ``simulate``, those that would cross
    a network in the split this process pretends to be cross the simulated one too."""

    network: SimulatedNetwork | None
    group_of: Mapping[str, str]  # module -> its simulated group ("" : the modules that stay together)
    provided: Mapping[str, tuple[Contract[Any], str]]  # contract name -> (contract, module)
    gateway: bool
    contracts: Mapping[str, Contract[Any]]  # every contract of the catalog, by name: each call is counted

    @classmethod
    def of(
        cls, settings: Settings, catalog: Sequence[Module], composed: Sequence[ComposedModule]
    ) -> _Boundaries:
        simulate = settings.simulate
        record = Path(simulate.record_file) if simulate.record_file else None
        network = (
            SimulatedNetwork(simulate.latencies_ms, simulate.failure_rate, record)
            if simulate.remote
            else None
        )
        provided = {m.module.provides.name: (m.module.provides, m.name) for m in composed}
        contracts = {m.provides.name: m.provides for m in catalog}
        return cls(network, simulate.groups(), provided, simulate.gateway, contracts)

    def as_seen_from(
        self, caller: str | None, contracts: Mapping[str, providers.Provider[Any]]
    ) -> dict[str, providers.Provider[Any]]:
        """``contracts`` as module ``caller`` (None: the web pages) would reach them in the split."""
        seen = {name: self._counted(name, provider) for name, provider in contracts.items()}
        if self.network is None:
            return seen
        # The web pages (caller None) run in the gateway, or with the modules that stay together.
        pages = None if self.gateway else ""
        here = pages if caller is None else self.group_of.get(caller, "")
        for name, (contract, module) in self.provided.items():
            if name in seen and self.group_of.get(module, "") != here:
                seen[name] = providers.Singleton(simulated, contract, seen[name], self.network)
        return seen

    def _counted(self, name: str, provider: providers.Provider[Any]) -> providers.Provider[Any]:
        contract = self.contracts.get(name)
        return providers.Singleton(counted, contract, provider) if contract is not None else provider


def _wire(
    target: ComposedModule, kernel: AppContainer, contracts: Mapping[str, providers.Provider[Any]]
) -> None:
    """Fill every dependency the module's container declares: a required contract, or a kernel service."""
    filled: dict[int, providers.Provider[Any]] = {}
    for contract, declared in target.module.requires.items():
        if contract.name not in contracts:
            raise CompositionError(
                f"module {target.name} requires contract {contract.name!r}, which no module provides"
            )
        filled[id(target.provider(declared, f"dependency for {contract.name!r}"))] = contracts[contract.name]
    kernel_services: dict[type, providers.Provider[Any]] = {
        Settings: kernel.settings,
        AccessTokens: kernel.access_tokens,
        Throttles: kernel.throttles,
        Database: providers.Object(target.database),
        Outbox: providers.Object(target.outbox),
    }
    for name, dependency in target.container.dependencies.items():
        given = filled.get(id(dependency)) or kernel_services.get(getattr(dependency, "instance_of", object))
        if given is None:
            raise CompositionError(
                f"module {target.name}: its container's dependency {name!r} is neither a contract its "
                f"manifest requires nor a kernel service ({', '.join(t.__name__ for t in kernel_services)})"
            )
        dependency.override(given)


def _published_keys(settings: Settings, placement: Placement, remotes: Remotes) -> PublishedKeys | None:
    """Where identity runs elsewhere, the public keys it publishes (None: identity runs here)."""
    owner = placement.remote.get(IDENTITY.name)
    if owner is None or remotes.http is None:
        return None
    http, url = remotes.http, f"{owner.url.rstrip('/')}{JWKS_PATH}"

    async def fetch() -> dict[str, Any]:
        answer = await http.get(url)
        answer.raise_for_status()
        published: dict[str, Any] = answer.json()
        return published

    return PublishedKeys(fetch, refresh_seconds=settings.security.jwks_refresh_seconds)


def _revoked_sessions(
    settings: Settings, contracts: Mapping[str, providers.Provider[Any]]
) -> RevokedSessions | None:
    """What this process knows of voided access tokens, asked of identity (local, remote or fake).

    Only a process with modules or the web UI checks users' tokens; a pure API gateway leaves
    that to the owners.
    """
    identity = contracts.get(IDENTITY.name)
    if identity is None:
        return None
    security = settings.security
    return RevokedSessions(
        lambda since: identity().session_revocations(since),
        interval_seconds=security.revocation_poll_seconds,
        token_ttl_seconds=security.access_token_ttl_seconds,
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
            units=m.provider(m.module.units, "units")(),
            subscriptions={
                event_class.type_name(): Subscription(event_class, handlers[method])
                for event_class, method in m.module.consumes.items()
            },
        )
        for m in composed
        if m.module.consumes
        # one handler per method: a run of consecutive events for the same method is one call
        for handlers in [{method: _handler(m, method) for method in set(m.module.consumes.values())}]
    ]
    declared = {
        module.name: sorted(e.type_name() for e in module.consumes) for module in catalog if module.consumes
    }
    return EventRuntime(bus=bus, settings=events, relays=relays, consumers=consumers, declared=declared)


def _handler(composed: ComposedModule, method: EventHandler) -> Any:
    """``method`` of the module's handlers, called with a run of events and the inbox's unit of work.

    Checked now, not at the first delivery: it must be a method of the class ``handlers`` makes.
    """
    handlers = composed.provider(composed.module.handlers, "handlers")
    made = getattr(handlers, "cls", None)
    if not isinstance(made, type) or getattr(made, method.__name__, None) is not method:
        raise CompositionError(
            f"module {composed.name}: {method.__qualname__} is not a method of its handlers ({made!r})"
        )

    async def handle(events: Sequence[Any], unit: Any) -> None:
        await method(handlers(), events, unit)

    return handle
