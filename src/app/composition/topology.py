"""Where each module runs: in this process, or in another group reached over HTTP.

With no groups configured every module runs here (the monolith). With groups, a process
runs one group: its modules locally, every other module through a remote adapter.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from app.kernel.config import ConfigError, Settings
from app.kernel.module import Module
from app.kernel.resilience import CircuitBreaker
from app.kernel.rpc import RemoteGroup, fetch_service_keys, remote
from app.kernel.security import ServiceTokens, service_keys
from app.kernel.signing_keys import PublishedKeys
from app.kernel.telemetry.metrics import watch_breaker

__all__ = ("MONOLITH", "Placement", "Remotes", "connect_remotes", "place")

MONOLITH = "monolith"


@dataclass(frozen=True, slots=True)
class Placement:
    """This process's group, the modules it runs, and the group each other module runs in."""

    group: str
    local: tuple[Module, ...]
    remote: dict[str, RemoteGroup] = field(default_factory=dict)  # module name -> its group
    remote_modules: tuple[Module, ...] = ()
    peers: tuple[RemoteGroup, ...] = ()  # every other group, modules or none

    @property
    def every_module(self) -> tuple[Module, ...]:
        """Every module of the deployment, wherever it runs (the API document shows them all)."""
        return self.local + self.remote_modules

    @property
    def is_split(self) -> bool:
        return self.group != MONOLITH

    def processes(self, settings: Settings) -> int:
        """The processes of the deployment that hold module databases: every worker of every such group."""
        groups = sum(1 for spec in settings.topology.groups.values() if spec.modules) if self.is_split else 1
        return settings.server.workers * max(groups, 1)


def place(settings: Settings, group: str | None, catalog: Sequence[Module]) -> Placement:
    """Decide what runs here; with ``group`` None, everything does."""
    groups = settings.topology.groups
    if group is None or group == MONOLITH:
        return Placement(group=MONOLITH, local=tuple(catalog))
    if group not in groups:
        raise ConfigError(f"topology.groups.{group}: no such group (groups: {sorted(groups)})")
    names = {m.name for m in catalog}
    placed: dict[str, str] = {}
    for name, spec in groups.items():
        for module in spec.modules:
            if module not in names:
                raise ConfigError(f"topology.groups.{name}.modules: no module named {module!r}")
            if module in placed:
                raise ConfigError(f"topology: module {module!r} is in both {placed[module]!r} and {name!r}")
            placed[module] = name
    if missing := sorted(names - set(placed)):
        raise ConfigError(f"topology: module {missing[0]!r} is in no group")
    rpc = settings.rpc
    remote_groups = {
        name: RemoteGroup(
            name=name,
            url=spec.url,
            breaker=CircuitBreaker(
                name,
                failure_rate_threshold=rpc.breaker_failure_rate,
                window_size=rpc.breaker_window,
                minimum_calls=rpc.breaker_minimum_calls,
                open_seconds=rpc.breaker_open_seconds,
                half_open_calls=rpc.breaker_half_open_calls,
                on_state_change=watch_breaker(name),
            ),
        )
        for name, spec in groups.items()
        if name != group
    }
    for name, remote_group in remote_groups.items():
        if not remote_group.url:
            needed = f"to reach {groups[name].modules}" if groups[name].modules else "to check its calls"
            raise ConfigError(f"topology.groups.{name}.url: needed {needed}")
    return Placement(
        group=group,
        local=tuple(m for m in catalog if placed[m.name] == group),
        remote={m.name: remote_groups[placed[m.name]] for m in catalog if placed[m.name] != group},
        remote_modules=tuple(m for m in catalog if placed[m.name] != group),
        peers=tuple(remote_groups.values()),
    )


@dataclass(frozen=True, slots=True)
class Remotes:
    """Remote adapters for every contract served elsewhere, and the HTTP client they share."""

    implementations: dict[str, object]
    http: httpx.AsyncClient | None = None  # only a split process talks to others
    tokens: ServiceTokens | None = None

    async def aclose(self) -> None:
        if self.tokens is not None:
            await self.tokens.aclose()
        if self.http is not None:
            await self.http.aclose()


def connect_remotes(settings: Settings, placement: Placement) -> Remotes:
    if not placement.is_split:
        return Remotes(implementations={})
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    http = httpx.AsyncClient(limits=limits, timeout=settings.rpc.timeout_seconds)
    tokens = _service_tokens(settings, placement, http)
    implementations: dict[str, object] = {
        module.provides.name: remote(
            module.provides,
            group=placement.remote[module.name],
            http=http,
            tokens=tokens,
            settings=settings.rpc,
        )
        for module in placement.remote_modules
    }
    return Remotes(implementations=implementations, http=http, tokens=tokens)


def _service_tokens(settings: Settings, placement: Placement, http: httpx.AsyncClient) -> ServiceTokens:
    """This group's service key pair; every other group may call it, proven by its own keys."""
    security = settings.security

    def published_by(peer: RemoteGroup) -> PublishedKeys:
        return PublishedKeys(
            functools.partial(fetch_service_keys, http, peer),
            refresh_seconds=security.jwks_refresh_seconds,
            name=f"service keys of {peer.name}",
        )

    return ServiceTokens(
        keys=lambda: service_keys(settings, placement.group),
        group=placement.group,
        ttl_seconds=security.service_token_ttl_seconds,
        callers={peer.name: published_by(peer) for peer in placement.peers},
    )
