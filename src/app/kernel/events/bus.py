"""The bus port: one interface, three backends (in-process, NATS JetStream, RabbitMQ).

A backend moves :class:`EventMessage` values from a module's outbox relay to every
consumer module that declared interest in their type. Its promises:

- ``publish`` returns only once the broker has durably accepted the message (JetStream's
  publish acknowledgement, RabbitMQ's publisher confirm; in-process: every local consumer
  handled it). It raises :class:`BusUnavailable` when the broker cannot be reached in
  time, and any other exception when this one message was refused.
- A consumer is durable and named after its module: messages published while it was
  away wait for it. ``declare`` creates every consumer's durable state from the catalog
  up front, so nothing published before a consumer's process first starts is dropped.
- A handler's message is acknowledged only after the handler returned (its transaction
  committed); a handler that raises gets the message again later. Delivery is
  at-least-once: consumers make effects happen once with their inbox.
- ``event_id`` de-duplicates on the broker where it can (JetStream's ``Nats-Msg-Id``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Protocol

import msgspec

__all__ = (
    "BusUnavailable",
    "DeliveryFailed",
    "EventBus",
    "EventMessage",
    "Handler",
    "InProcessBus",
)

log = logging.getLogger("tessera.events")

# How an EventMessage travels on a broker: the payload is the body, the rest are headers.
HEADER_EVENT_ID = "Tessera-Event-Id"
HEADER_EVENT_TYPE = "Tessera-Event-Type"
HEADER_SOURCE = "Tessera-Source"
HEADER_KEY = "Tessera-Key"
HEADER_CORRELATION_ID = "Tessera-Correlation-Id"
HEADER_TRACEPARENT = "traceparent"  # W3C Trace Context's own names
HEADER_TRACESTATE = "tracestate"


class EventMessage(msgspec.Struct, frozen=True, kw_only=True):
    """One integration event as the bus carries it."""

    event_id: str  # the event's UUID, as text: de-duplication key on brokers and in inboxes
    event_type: str  # the event's tag, e.g. "tasks.TaskAssigned.v1"
    source: str  # the module that published it
    key: str  # the entity it is about: events of one key are published in order
    payload: bytes  # the event itself, JSON-encoded with its tag
    correlation_id: str | None = None  # the request that caused it, for logs across modules
    traceparent: str | None = None  # W3C trace context of the work that wrote it: the trace goes on
    tracestate: str | None = None

    def trace_headers(self) -> dict[str, str]:
        """The W3C trace context it carries, as headers OpenTelemetry's propagators read."""
        carried = {HEADER_TRACEPARENT: self.traceparent, HEADER_TRACESTATE: self.tracestate}
        return {name: value for name, value in carried.items() if value}

    def headers(self) -> dict[str, str]:
        """Every field but the payload, as the header names brokers carry (optional ones when set)."""
        values = {
            HEADER_EVENT_ID: self.event_id,
            HEADER_EVENT_TYPE: self.event_type,
            HEADER_SOURCE: self.source,
            HEADER_KEY: self.key,
            HEADER_CORRELATION_ID: self.correlation_id,
            HEADER_TRACEPARENT: self.traceparent,
            HEADER_TRACESTATE: self.tracestate,
        }
        return {name: value for name, value in values.items() if value is not None}

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, str | None],
        payload: bytes,
        *,
        event_id: str | None = None,
        event_type: str | None = None,
    ) -> EventMessage:
        """The message ``headers()`` describes; ``event_id``, ``event_type`` fill what a broker keeps apart.

        Raises ``ValueError`` naming the first required field that is missing.
        """
        required = {
            "event id": headers.get(HEADER_EVENT_ID) or event_id,
            "event type": headers.get(HEADER_EVENT_TYPE) or event_type,
            "source": headers.get(HEADER_SOURCE),
            "key": headers.get(HEADER_KEY),
        }
        if missing := [name for name, value in required.items() if not value]:
            raise ValueError(f"the message has no {missing[0]}")
        return cls(
            event_id=str(required["event id"]),
            event_type=str(required["event type"]),
            source=str(required["source"]),
            key=str(required["key"]),
            payload=payload,
            correlation_id=headers.get(HEADER_CORRELATION_ID),
            traceparent=headers.get(HEADER_TRACEPARENT),
            tracestate=headers.get(HEADER_TRACESTATE),
        )


Handler = Callable[[EventMessage], Awaitable[None]]


class BusUnavailable(Exception):
    """The broker could not be reached (or did not confirm) in time: try again later."""


class DeliveryFailed(Exception):
    """In-process delivery: a consumer's handler raised; the message counts as not delivered."""


class EventBus(Protocol):
    """What the outbox relays and the consumers need of a message bus."""

    name: str

    @property
    def connected(self) -> bool:
        """Whether the connection to the broker is up now (always, in-process)."""
        ...

    async def connect(self) -> None:
        """Open the connection; raises BusUnavailable if the broker does not answer."""
        ...

    async def declare(self, consumers: Mapping[str, Collection[str]]) -> None:
        """Create the durable state of every consumer (name -> event types) if missing."""
        ...

    async def publish(self, message: EventMessage) -> None:
        """Hand one message over; returns once it is durably accepted."""
        ...

    async def subscribe(self, consumer: str, event_types: Collection[str], handler: Handler) -> None:
        """Start delivering the consumer's messages to ``handler`` until ``close``."""
        ...

    async def close(self) -> None: ...


class InProcessBus:
    """The monolith's bus: ``publish`` runs every subscribed local consumer and waits for it.

    Nothing is held in memory: a message counts as published only once every consumer
    handled it (committed its inbox row), so a crash at any point leaves the event pending
    in the outbox, and the relay publishes it again after restart.
    """

    name = "inprocess"

    def __init__(self) -> None:
        self._handlers: dict[str, list[tuple[str, Handler]]] = {}

    @property
    def connected(self) -> bool:
        return True

    async def connect(self) -> None:
        return None

    async def declare(self, consumers: Mapping[str, Collection[str]]) -> None:
        return None

    async def publish(self, message: EventMessage) -> None:
        subscribed = self._handlers.get(message.event_type, [])
        outcomes = await asyncio.gather(
            *(handler(message) for _, handler in subscribed), return_exceptions=True
        )
        failed = [
            (consumer, outcome)
            for (consumer, _), outcome in zip(subscribed, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        ]
        for consumer, error in failed:
            log.warning(
                "consumer %s failed on %s %s: %r",
                consumer,
                message.event_type,
                message.event_id,
                error,
                exc_info=error,
            )
        if failed:
            names = ", ".join(consumer for consumer, _ in failed)
            raise DeliveryFailed(f"{message.event_type} {message.event_id}: {names} failed")

    async def subscribe(self, consumer: str, event_types: Collection[str], handler: Handler) -> None:
        for event_type in event_types:
            self._handlers.setdefault(event_type, []).append((consumer, handler))

    async def close(self) -> None:
        self._handlers.clear()
