"""The manifest every module exports: what it is, provides, requires, serves and stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dependency_injector.containers import DeclarativeContainer
    from litestar.types import ControllerRouterHandler

    from contracts import Contract, IntegrationEvent

__all__ = ("API_PREFIX", "EventHandler", "Module")

# Every module's public routes are mounted under this prefix.
API_PREFIX = "/api/v1"

# A method of the class a module's container provides as ``handlers``, taking one event.
EventHandler = Callable[[Any, Any], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """One bounded context, as the composition root sees it.

    ``container`` is the module's dependency-injector container. It declares a
    ``providers.Dependency`` for each kernel service it needs (``settings``,
    ``database``, ``access_tokens``) and one named after each contract it
    ``requires``; it exposes the implementation of the contract it ``provides`` as
    ``api``. ``dependencies`` maps the names its HTTP handlers ask for to providers
    of that container.

    ``publishes`` lists the events the module writes to its outbox (each declared by the
    contract it provides). ``consumes`` maps each event type the module reacts to onto a
    method of its ``handlers`` provider: the kernel calls it once per event, inside a
    transaction of the module's database that also records the event in its inbox.
    """

    name: str
    summary: str
    provides: Contract[Any]
    container: type[DeclarativeContainer]
    requires: tuple[Contract[Any], ...] = ()
    routes: Sequence[ControllerRouterHandler] = ()
    dependencies: Mapping[str, str] = field(default_factory=dict)
    publishes: tuple[type[IntegrationEvent], ...] = ()
    consumes: Mapping[type[IntegrationEvent], EventHandler] = field(default_factory=dict)
