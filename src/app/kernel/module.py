"""The manifest every module exports: what it is, provides, requires, serves and stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from dependency_injector.containers import DeclarativeContainer
    from dependency_injector.providers import Provider
    from litestar.types import ControllerRouterHandler

    from contracts import Contract, IntegrationEvent

__all__ = ("API_PREFIX", "EventHandler", "Module", "ModuleCommands")

# Every module's public routes are mounted under this prefix.
API_PREFIX = "/api/v1"

# A method of the class a module's ``handlers`` provider makes: (self, events, unit of work).
# It gets a run of consecutive events from one delivered batch, in their order — of its type,
# or of every type the manifest maps to it — and applies them in the unit of work that
# records them in the module's inbox.
EventHandler = Callable[[Any, Sequence[Any], Any], Awaitable[None]]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """One bounded context, as the composition root sees it.

    Every piece the composition takes from the module's dependency-injector ``container``
    is one of that container's providers, named here as an object and checked at start-up:

    - ``api``: the implementation of the contract the module ``provides``;
    - ``requires``: each contract the module needs, and the ``providers.Dependency`` of its
      container that the local service, the remote adapter or a fake fills;
    - ``route_dependencies``: what its route handlers receive, by parameter name;
    - ``units``: its units of work; an event's handler runs in the one the inbox opened;
    - ``handlers`` and ``consumes``: the object whose methods apply other modules' events,
      and the method that applies each event type;
    - ``projector``: for a module with an event store, the
      :class:`~app.kernel.events.projections.Projector` of its read models, which the
      composition runs in the background and ``tessera projections`` inspects and rebuilds;
    - ``orchestrator``: for a module that orchestrates sagas, its
      :class:`~app.kernel.sagas.Orchestrator`, which the composition runs in the background
      (resuming every unfinished saga) and ``tessera sagas`` lists, shows and retries.

    The kernel services a container needs (``Settings``, ``Database``, ``Outbox``,
    ``AccessTokens``) are ``providers.Dependency(instance_of=...)`` and are given by type.
    ``publishes`` lists the events the module writes to its outbox (each declared by its
    contract); ``commands`` are click commands of its own, which ``tessera`` collects.
    """

    name: str
    summary: str
    provides: Contract[Any]
    container: type[DeclarativeContainer]
    api: Provider[Any]
    requires: Mapping[Contract[Any], Provider[Any]] = field(default_factory=dict)
    routes: Sequence[ControllerRouterHandler] = ()
    route_dependencies: Mapping[str, Provider[Any]] = field(default_factory=dict)
    units: Provider[Any] | None = None
    publishes: tuple[type[IntegrationEvent], ...] = ()
    handlers: Provider[Any] | None = None
    consumes: Mapping[type[IntegrationEvent], EventHandler] = field(default_factory=dict)
    projector: Provider[Any] | None = None
    orchestrator: Provider[Any] | None = None
    commands: Sequence[Any] = ()  # click commands; the kernel itself does not import click


class ModuleCommands(Protocol):
    """What a module's command line gets from the composition (``click.pass_obj``)."""

    def run(self, provider: Provider[Any], work: Callable[[Any], Awaitable[T]]) -> T:
        """Compose the application, hand ``work`` what ``provider`` (of a module's container) makes."""
        ...
