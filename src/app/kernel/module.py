"""The manifest every module exports: what it is, provides, requires, serves and stores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dependency_injector.containers import DeclarativeContainer
    from litestar.types import ControllerRouterHandler

    from contracts import Contract

__all__ = ("API_PREFIX", "Module")

# Every module's public routes are mounted under this prefix.
API_PREFIX = "/api/v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Module:
    """One bounded context, as the composition root sees it.

    ``container`` is the module's dependency-injector container. It declares a
    ``providers.Dependency`` for each kernel service it needs (``settings``,
    ``database``, ``access_tokens``) and one named after each contract it
    ``requires``; it exposes the implementation of the contract it ``provides`` as
    ``api``. ``dependencies`` maps the names its HTTP handlers ask for to providers
    of that container.
    """

    name: str
    summary: str
    provides: Contract[Any]
    container: type[DeclarativeContainer]
    requires: tuple[Contract[Any], ...] = ()
    routes: Sequence[ControllerRouterHandler] = ()
    dependencies: Mapping[str, str] = field(default_factory=dict)
