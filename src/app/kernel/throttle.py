"""Throttles: how often one client may try credentials or run a costly lookup.

Two kinds, counted in one Litestar store (Redis when several processes must share the
counts, memory when one process is all there is):

- **rate limits** per client address (or per signed-in user) on the routes a module marks
  with :func:`throttled`, enforced by Litestar's own rate-limit middleware, one per kind,
  behind one dispatcher that lets every unmarked route pass untouched;
- **attempt limits** on one key (failed sign-ins of one account), which only the module
  that checks the password can count: :class:`AttemptLimit`.

Either answers 429 ``request.throttled`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import timedelta
from enum import StrEnum
from functools import partial
from types import TracebackType
from typing import TYPE_CHECKING, Any

from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import RateLimitConfig, get_remote_address
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore

from contracts import DependencyUnavailable, Principal, Throttled

if TYPE_CHECKING:
    from collections.abc import Mapping

    from litestar import Request
    from litestar.types import ASGIApp, Receive, Scope, Send

    from app.kernel.config import ThrottleSettings

__all__ = ("STORE_NAME", "AttemptLimit", "RateKind", "Throttles", "throttled")

log = logging.getLogger("tessera.throttle")

STORE_NAME = "throttle"  # the Litestar store the rate-limit middlewares count in
_OPT = "throttle"


class RateKind(StrEnum):
    """What a throttled route is; each kind has its own limit and counts."""

    LOGIN = "login"  # per client address
    REGISTRATION = "registration"  # per client address
    USER_SEARCH = "user_search"  # per signed-in user


def throttled(kind: RateKind) -> dict[str, Any]:
    """Route ``opt`` that puts a route under the rate limit of ``kind``."""
    return {_OPT: kind}


class Throttles:
    """The deployment's throttles: their store, the rate-limit middlewares, the attempt limits."""

    __slots__ = ("_settings", "failed_logins", "store")

    def __init__(self, settings: ThrottleSettings, *, namespace: str) -> None:
        self._settings = settings
        self.store: Store = _store(settings, namespace)
        self.failed_logins = AttemptLimit(
            self.store,
            prefix="failed-login:",
            limit=settings.failed_logins_per_account if settings.enabled else None,
            window_seconds=settings.failed_login_window_seconds,
            what="failed sign-ins for this account",
        )

    def rate_limits(self) -> list[DefineMiddleware]:
        """The app's rate-limit middleware: a marked route goes through its kind's limit."""
        if not self._settings.enabled:
            return []
        settings = self._settings
        limits = {
            RateKind.LOGIN: (settings.logins_per_address_per_minute, _address),
            RateKind.REGISTRATION: (settings.registrations_per_address_per_minute, _address),
            RateKind.USER_SEARCH: (settings.user_searches_per_user_per_minute, _user),
        }
        configs = {
            kind: RateLimitConfig(
                rate_limit=("minute", limit),
                identifier_for_request=partial(_identify, kind, identify),
                store=STORE_NAME,
            )
            for kind, (limit, identify) in limits.items()
        }
        return [DefineMiddleware(_RateLimits, configs=configs)]

    async def aclose(self) -> None:
        await self.store.__aexit__(None, None, None)


class AttemptLimit:
    """At most ``limit`` attempts per key in a window that opens with the first of them.

    An attempt counts when it starts, so that concurrent tries cannot all slip past the
    limit before any of them failed; :meth:`forgive` (a success) clears the key.
    """

    __slots__ = ("_limit", "_lock", "_prefix", "_store", "_what", "_window")

    def __init__(
        self, store: Store, *, prefix: str, limit: int | None, window_seconds: int, what: str
    ) -> None:
        self._store = store
        self._prefix = prefix
        self._limit = limit
        self._window = window_seconds
        self._what = what
        self._lock = asyncio.Lock()

    async def attempt(self, key: str) -> None:
        """Count one attempt on ``key``; Throttled if its ``limit`` attempts are already spent."""
        if self._limit is None:
            return
        name = self._name(key)
        async with self._lock:
            count = int(await self._store.get(name) or 0)
            left = await self._store.expires_in(name) if count else None
            if count >= self._limit:
                wait = left or self._window
                raise Throttled(f"Too many {self._what}; try again in {wait} seconds.", retry_after=wait)
            await self._store.set(name, str(count + 1), expires_in=left or self._window)

    async def forgive(self, key: str) -> None:
        if self._limit is not None:
            await self._store.delete(self._name(key))

    def _name(self, key: str) -> str:
        # Hashed: the store (Redis, say) never holds an e-mail address.
        return self._prefix + hashlib.sha256(key.encode()).hexdigest()


def _store(settings: ThrottleSettings, namespace: str) -> _GuardedStore:
    if settings.store == "redis":
        # Only deployments that configure Redis load it (~7 MiB in every process otherwise).
        from litestar.stores.redis import RedisStore
        from redis.exceptions import RedisError

        store = RedisStore.with_client(
            settings.redis_url.reveal(), namespace=f"{namespace or 'tessera'}_throttle"
        )
        return _GuardedStore(store, failures=(OSError, RedisError))
    return _GuardedStore(MemoryStore(), failures=(OSError,))


class _GuardedStore(Store):
    """The store, whose failures (Redis down) are a 503 to the caller, never a 500."""

    __slots__ = ("_failures", "_inner")

    def __init__(self, inner: Store, *, failures: tuple[type[Exception], ...]) -> None:
        self._inner = inner
        self._failures = failures

    async def set(self, key: str, value: str | bytes, expires_in: int | timedelta | None = None) -> None:
        await self._guard(self._inner.set(key, value, expires_in))

    async def get(self, key: str, renew_for: int | timedelta | None = None) -> bytes | None:
        found: bytes | None = await self._guard(self._inner.get(key, renew_for))
        return found

    async def delete(self, key: str) -> None:
        await self._guard(self._inner.delete(key))

    async def delete_all(self) -> None:
        await self._guard(self._inner.delete_all())

    async def exists(self, key: str) -> bool:
        found: bool = await self._guard(self._inner.exists(key))
        return found

    async def expires_in(self, key: str) -> int | None:
        left: int | None = await self._guard(self._inner.expires_in(key))
        return left

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        await self._inner.__aexit__(exc_type, exc_val, exc_tb)

    async def _guard(self, call: Any) -> Any:
        try:
            return await call
        except self._failures as exc:
            log.warning("the throttle store failed: %s: %s", type(exc).__name__, exc)
            raise DependencyUnavailable(
                "Sign-in limits cannot be checked right now; try again shortly."
            ) from None


class _RateLimits:
    """Hands a route marked with a kind to that kind's Litestar rate-limit middleware.

    Litestar builds a route's middleware stack once, at start-up, so each route gets its own
    instance; an unmarked route (nearly all of them) costs one dictionary lookup, where a
    rate-limit middleware per kind built a request object three times over to find that out.
    """

    __slots__ = ("app", "limits")

    def __init__(self, app: ASGIApp, *, configs: Mapping[RateKind, RateLimitConfig]) -> None:
        self.app = app
        self.limits: dict[object, ASGIApp] = {
            kind: config.middleware(app) for kind, config in configs.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        limit = self.limits.get(handler.opt.get(_OPT)) if handler is not None else None
        await (limit or self.app)(scope, receive, send)


def _identify(kind: RateKind, identify: Any, request: Request[Any, Any, Any]) -> str:
    return f"{kind}:{identify(request)}"


def _address(request: Request[Any, Any, Any]) -> str:
    return get_remote_address(request)


def _user(request: Request[Any, Any, Any]) -> str:
    user = request.scope.get("user")
    return str(user.user_id) if isinstance(user, Principal) else get_remote_address(request)
