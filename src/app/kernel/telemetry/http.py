"""The HTTP side of telemetry: one measurement per request (its RED metrics and its log
line), and the ``/metrics`` route Prometheus scrapes.

The middleware wraps the whole application inside the call context (so 404s, 405s and
authentication failures are measured and logged with their correlation id too). The
route is the template Litestar matched (``/api/v1/tasks/{task_id:uuid}``), read after the
application ran; a path no route serves is ``unmatched`` — never the raw path, which
carries ids and whatever a client typed.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from litestar import Response, get
from litestar.enums import ScopeType
from litestar.handlers import HTTPRouteHandler

from app.kernel.security import public
from app.kernel.telemetry.logs import trace_ids
from app.kernel.telemetry.metrics import (
    CONTRACT_CALLS,
    EXPOSITION_MEDIA_TYPE,
    HTTP_REQUEST_DURATION,
    HTTP_REQUESTS,
    HTTP_REQUESTS_IN_PROGRESS,
    contract_calls_of_request,
    exposition,
)

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ("UNMATCHED", "RequestTelemetryMiddleware", "metrics_route")

log = logging.getLogger("tessera.requests")

UNMATCHED = "unmatched"


class RequestTelemetryMiddleware:
    """Measures each request (RED metrics) if ``measure``, and logs it if ``log_requests``."""

    __slots__ = ("app", "log_requests", "measure")

    def __init__(self, app: ASGIApp, *, measure: bool = True, log_requests: bool = True) -> None:
        self.app = app
        self.measure = measure
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers if the application raises before starting one
        ids: dict[str, str] = {}  # the request's span, seen while it is current (it has ended by the log)

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if self.log_requests:
                    ids.update(trace_ids())
            await send(message)

        if self.measure:
            HTTP_REQUESTS_IN_PROGRESS.inc()
        try:
            with contract_calls_of_request() as calls:
                await self.app(scope, receive, send_and_watch)
        finally:
            elapsed = time.perf_counter() - began
            method = scope["method"]
            route = scope.get("path_template") or UNMATCHED
            if self.measure:
                HTTP_REQUESTS_IN_PROGRESS.dec()
                HTTP_REQUESTS.labels(method, route, f"{status // 100}xx").inc()
                HTTP_REQUEST_DURATION.labels(method, route).observe(elapsed)
                for call, times in calls.items():
                    CONTRACT_CALLS.labels(route, call).inc(times)
            if self.log_requests:
                user = scope.get("user")
                log.info(
                    "%s %s %d %.1fms",
                    method,
                    route,
                    status,
                    elapsed * 1000,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 3),
                        "user_id": str(user.user_id) if hasattr(user, "user_id") else None,
                        **ids,
                    },
                )


def metrics_route(path: str) -> HTTPRouteHandler:
    """``GET <path>``: every metric in the Prometheus text format, unauthenticated as Prometheus scrapes."""

    @get(
        path,
        opt=public("Prometheus scrapes without credentials; no label holds user data"),
        include_in_schema=False,
        sync_to_thread=False,
    )
    def metrics() -> Response[bytes]:
        return Response(exposition(), media_type=EXPOSITION_MEDIA_TYPE)

    return metrics
