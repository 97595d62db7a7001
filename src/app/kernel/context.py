"""The caller's context (who acts, under which correlation id), carried in contextvars.

In-process calls see it directly; remote adapters turn it into headers and back.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import msgspec
from litestar.enums import ScopeType

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
    "child_traceparent",
    "current_context",
    "new_correlation_id",
)

REQUEST_ID_HEADER = "x-request-id"
# An incoming id is echoed back, so it must be harmless in headers and logs.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


class CallContext(msgspec.Struct, frozen=True, kw_only=True):
    correlation_id: str
    principal: Principal | None = None
    # time.monotonic() by which the call must be answered; None means no deadline.
    deadline: float | None = None
    # W3C trace context of the caller's span, passed on to every remote call.
    traceparent: str | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline (never negative), or None without one."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


_current: ContextVar[CallContext | None] = ContextVar("tessera_call_context", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


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


def child_traceparent(parent: str | None) -> str:
    """A traceparent for a new span: the parent's trace id (or a new one), a new span id."""
    trace_id = parent.split("-")[1] if parent and _TRACEPARENT.fullmatch(parent) else secrets.token_hex(16)
    return f"00-{trace_id}-{secrets.token_hex(8)}-01"


def bind_principal(principal: Principal | None) -> None:
    """Record who acts for the rest of the current call (after authentication)."""
    _current.set(msgspec.structs.replace(current_context(), principal=principal))


class RequestContextMiddleware:
    """Opens a call context per HTTP request and returns its correlation id on every response.

    It wraps the whole application, error responses and unknown routes included.
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

        with call_context(
            CallContext(correlation_id=correlation_id, traceparent=_incoming_traceparent(scope))
        ):
            await self.app(scope, receive, send_with_request_id)


def _incoming_traceparent(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"traceparent":
            return child_traceparent(value.decode("latin-1"))
    return child_traceparent(None)


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _ACCEPTABLE_ID.fullmatch(candidate) else None
    return None
