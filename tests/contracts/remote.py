"""Contracts served by a real server on loopback and called through the remote adapter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec
from litestar import Litestar

from app.composition.container import Composition, compose
from app.composition.web import create_app
from app.kernel.config import EventSettings, GroupSettings, RpcSettings, Settings, TopologySettings
from app.kernel.context import CallContext, call_context
from app.kernel.resilience import CircuitBreaker
from app.kernel.rpc import RemoteGroup, contract_methods, remote, service_keys_route
from app.kernel.security import ServiceTokens
from app.kernel.signing_keys import SigningKeys, service_tokens_of
from contracts import Contract, Principal
from tests.conftest import SERVICE_KEY, make_settings, run_async
from tests.servers import free_port, server_thread

ApiT = TypeVar("ApiT")

# The test plays the "tasks" group calling "identity", or the "gateway" calling "tasks".
CALLER = "gateway"


def split_settings(data_dir: Path, **ports: int) -> Settings:
    """Settings with one group per module named in ``ports``; the caller's group holds the rest.

    A split topology needs a broker for its events; these tests make no use of them, so the
    bus may stay unconnected (its runtime retries in the background) without harm.
    """
    groups = {
        name: GroupSettings(modules=[name], url=f"http://127.0.0.1:{port}") for name, port in ports.items()
    }
    from app.composition.catalog import MODULES  # here: importing this file must not import every module

    others = [m.name for m in MODULES if m.name not in ports]
    groups[CALLER] = GroupSettings(modules=others, url=f"http://127.0.0.1:{free_port()}")
    settings = make_settings(data_dir)
    rpc = RpcSettings(timeout_seconds=5.0, backoff_initial_seconds=0.01, backoff_max_seconds=0.05)
    events = EventSettings(bus="nats", namespace=f"t{uuid.uuid4().hex[:12]}")
    return msgspec.structs.replace(settings, topology=TopologySettings(groups=groups), rpc=rpc, events=events)


@asynccontextmanager
async def remote_client(contract: Contract[ApiT], base_url: str, group: str) -> AsyncIterator[ApiT]:
    """A remote adapter for ``contract`` served at ``base_url`` by ``group``; the test is the caller."""
    async with httpx.AsyncClient() as http:
        yield remote(
            contract,
            group=RemoteGroup(name=group, url=base_url, breaker=CircuitBreaker(group)),
            http=http,
            tokens=_caller_tokens(),
            settings=RpcSettings(),
        )


class AsTheEdge:
    """Calls ``api`` as the edge would: each call's principal argument is the acting user."""

    def __init__(self, contract: Contract[Any], api: Any) -> None:
        for method in contract_methods(contract).values():
            setattr(self, method.name, self._acting(getattr(api, method.name)))

    @staticmethod
    def _acting(call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def acting(*args: Any, **kwargs: Any) -> Any:
            principal = next((a for a in (*args, *kwargs.values()) if isinstance(a, Principal)), None)
            with call_context(CallContext(correlation_id=uuid.uuid4().hex, principal=principal)):
                return await call(*args, **kwargs)

        return acting


def _caller_tokens() -> ServiceTokens:
    """The service tokens of the group the test plays, as its process would sign them."""
    keys = SigningKeys(SERVICE_KEY, derivation=service_tokens_of(CALLER))
    return ServiceTokens(keys=lambda: keys, group=CALLER, ttl_seconds=60, callers={})


def serve_group(settings: Settings, group: str, port: int, **external: object) -> Iterator[str]:
    """Migrate, then serve one topology group on loopback for the duration of the generator,
    and the public keys of the group the test plays, where the served group fetches them."""

    async def migrate() -> None:
        composition = compose(settings, group=group, external=external)
        await composition.upgrade()
        await composition.aclose()

    run_async(migrate())
    composition: Composition = compose(settings, group=group, external=external)
    caller_port = urlsplit(settings.topology.groups[CALLER].url).port
    assert caller_port is not None
    with (
        server_thread(Litestar([service_keys_route(_caller_tokens())]), caller_port),
        server_thread(create_app(composition), port) as base,
    ):
        yield base
