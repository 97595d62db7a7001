"""The HTTP server's own limits on what a client sends: head size and read timeouts.

uvicorn's httptools protocol accepts a request head of any size and waits for a slow
client forever. :class:`GuardedHttpToolsProtocol` is that protocol with three limits,
each answered before any application code runs:

- a request line plus headers over ``max_header_bytes``: 431 ``http.header_too_large``;
- a head not complete ``header_timeout_seconds`` after its first byte: 408
  ``http.request_timeout`` (a slow-loris client holds a connection that long at most);
- a body that stalls ``body_timeout_seconds`` between two chunks: the connection closes
  (the application sees the client gone).

Idle keep-alive connections are uvicorn's own ``timeout_keep_alive``.

And how a server stops when an orchestrator asks (SIGTERM): :class:`Drain`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ("ClientLimits", "Drain", "GuardedHttpToolsProtocol")

log = logging.getLogger("tessera.server")


class Drain:
    """SIGTERM, as Kubernetes or compose sends it: first drain, then uvicorn's graceful shutdown.

    For ``seconds`` after the signal, readiness answers 503 while every other request is
    served as before, so that load balancers and Services take the process out of rotation
    before it stops listening; each answer then says ``Connection: close``
    (:meth:`close_connections`), so that a caller's kept-alive connection ends after the
    request it carried instead of being cut idle when the listener closes, and the caller's
    next request opens a connection to wherever the Service now sends it. Then the server's
    own SIGTERM handler runs: the listener closes (new connections are refused), requests
    under way are answered, idle keep-alive connections close, and the application shuts
    down (relays and consumers finish their batch). A second SIGTERM while draining skips
    the rest of the wait.

    :meth:`install` runs at start-up in each worker, after uvicorn installed its handlers,
    and does nothing off the main thread (an application under a test client) or with
    ``seconds`` 0.
    """

    __slots__ = ("draining", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.draining = False  # since a SIGTERM

    async def close_connections(self, message: Any, _scope: Any) -> None:
        """A ``before_send`` hook: while draining, every answer closes its connection."""
        if self.draining and message["type"] == "http.response.start":
            message.setdefault("headers", []).append((b"connection", b"close"))

    def install(self) -> None:
        if self.seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return
        stop = signal.getsignal(signal.SIGTERM)
        if not callable(stop):
            return  # not served by uvicorn: nothing to hand over to
        loop = asyncio.get_running_loop()

        def on_sigterm(signum: int, frame: Any) -> None:
            if self.draining:
                stop(signum, frame)  # asked twice: stop now
                return
            self.draining = True
            log.info("SIGTERM: draining for %.1f s (readiness answers 503), then shutting down", self.seconds)
            loop.call_soon_threadsafe(loop.call_later, self.seconds, stop, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)


@dataclass(frozen=True, slots=True)
class ClientLimits:
    max_header_bytes: int = 16_384
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0


class _HeadTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with :class:`ClientLimits` (set by :meth:`configure`)."""

    limits = ClientLimits()

    @classmethod
    def configure(cls, limits: ClientLimits) -> None:
        """Called in each worker before it accepts connections (the app factory does it)."""
        cls.limits = limits

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    # -- connection ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()  # a client that connects and says nothing is slow too

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, but a head over the limit is 431 where uvicorn would say 400.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "http.header_too_large")
                return
            self._invalid()
        except httptools.HttpParserError:
            self._invalid()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    # -- parser callbacks ------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        if self._head_timer is None:
            self._arm_head_timer()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = None
        super().on_headers_complete()
        self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        self._arm_body_timer()
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = None
        super().on_message_complete()

    # -- limits ----------------------------------------------------------------------

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_header_bytes:
            raise _HeadTooLarge

    def _arm_head_timer(self) -> None:
        self._cancel(self._head_timer)
        self._head_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._head_too_slow)

    def _arm_body_timer(self) -> None:
        self._cancel(self._body_timer)
        self._body_timer = self.loop.call_later(self.limits.body_timeout_seconds, self._body_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.logger.info("a client sent its request head too slowly; closing the connection")
            self._refuse(HTTPStatus.REQUEST_TIMEOUT, "http.request_timeout")

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            self.logger.info("a client's request body stalled; closing the connection")
            self.transport.close()

    def _stop_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            self._cancel(timer)
        self._head_timer = self._body_timer = None

    @staticmethod
    def _cancel(timer: asyncio.TimerHandle | None) -> None:
        if timer is not None:
            timer.cancel()

    def _invalid(self) -> None:
        self.logger.warning("Invalid HTTP request received.")
        self._refuse(HTTPStatus.BAD_REQUEST, "http.bad_request")

    def _refuse(self, status: HTTPStatus, code: str) -> None:
        """A problem document, then the connection closes: what follows it cannot be trusted."""
        self._stop_timers()
        body = json.dumps(
            {"type": f"urn:tessera:problem:{code}", "title": status.phrase, "status": status, "code": code}
        ).encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\n"
            "content-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        self.transport.write(head + body)
        self.transport.close()
