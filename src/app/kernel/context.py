"""The caller's context (who acts, under which correlation id, by when), carried in contextvars.

In-process calls see it directly; remote adapters turn it into headers and back. The trace
context travels beside it, in OpenTelemetry's own context (``app.kernel.telemetry.tracing``).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import msgspec
from litestar.enums import ScopeType

from app.kernel.telemetry.tracing import continue_incoming_trace
from contracts import Principal

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = (
    "REQUEST_ID_HEADER",
    "CallContext",
    "RequestContextMiddleware",
    "active_context",
    "bind_principal",
    "call_context",
    "current_context",
    "new_correlation_id",
)

REQUEST_ID_HEADER = "x-request-id"
# An incoming id is echoed back, so it must be harmless in headers and logs.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class CallContext(msgspec.Struct, frozen=True, kw_only=True):
    correlation_id: str
    principal: Principal | None = None
    # time.monotonic() by which the call must be answered; None means no deadline.
    deadline: float | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


_current: ContextVar[CallContext | None] = ContextVar("tessera_call_context", default=None)


def new_correlation_id() -> str:
    """32 hex digits, as a uuid4's: from the random module (reseeded in each forked child),
    a fifth of the cost of a uuid4's system call. An id correlates; it guards nothing."""
    return f"{random.getrandbits(128):032x}"


def active_context() -> CallContext | None:
    """The context of the call under way, if there is one."""
    return _current.get()


def current_context() -> CallContext:
    """The context of the call under way; outside any call, a fresh one."""
    context = _current.get()
    return context if context is not None else CallContext(correlation_id=new_correlation_id())


@contextmanager
def call_context(context: CallContext) -> Iterator[CallContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind_principal(principal: Principal | None) -> None:
    """Record who acts for the rest of the current call (after authentication)."""
    _current.set(msgspec.structs.replace(current_context(), principal=principal))


class RequestContextMiddleware:
    """Opens a call context per HTTP request and returns its correlation id on every response.

    It wraps the whole application, error responses and unknown routes included. A caller's
    W3C trace context (``traceparent``) becomes the current one, so log lines and onward
    calls carry the caller's trace even where this process records no spans.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        correlation_id = _incoming_request_id(scope) or new_correlation_id()
        header = (REQUEST_ID_HEADER.encode(), correlation_id.encode())

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        with (
            call_context(CallContext(correlation_id=correlation_id)),
            continue_incoming_trace(_trace_headers(scope)),
        ):
            await self.app(scope, receive, send_with_request_id)


def _trace_headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in scope["headers"]
        if name in (b"traceparent", b"tracestate")
    }


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _ACCEPTABLE_ID.fullmatch(candidate) else None
    return None
