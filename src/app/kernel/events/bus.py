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
- A handler takes messages in batches, in the order the consumer's queue holds them, and
  applies them in that order (a consumer's inbox: one transaction per batch). A message is
  acknowledged only after the handler applied it (its transaction committed); a handler
  that applied only the first ``n`` raises :class:`PartlyHandled`, and the rest come again
  later, in their order. Delivery is at-least-once: consumers make effects happen once
  with their inbox.
- ``publish_batch`` hands over a relay's round: one key's messages in order, and none of a
  key's after one that was not accepted (:class:`NotHandedOver`).
- ``event_id`` de-duplicates on the broker where it can (JetStream's ``Nats-Msg-Id``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Protocol, TypeVar

import msgspec

__all__ = (
    "BusUnavailable",
    "DeliveryFailed",
    "EventBus",
    "EventMessage",
    "Handler",
    "InProcessBus",
    "NotHandedOver",
    "PartlyHandled",
    "apply_in_order",
    "publish_in_key_order",
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


Delivery = TypeVar("Delivery")  # a broker's handle on one delivered message

Handler = Callable[[Sequence[EventMessage]], Awaitable[None]]
"""Applies a batch of one consumer's messages in order; returns once every one is applied.

Raises :class:`PartlyHandled` when only the first ones were; any other exception: none was.
"""

Outcome = Exception | None  # of one message handed over: None once it is accepted


class BusUnavailable(Exception):
    """The broker could not be reached (or did not confirm) in time: try again later."""


class DeliveryFailed(Exception):
    """In-process delivery: a consumer's handler raised; the message counts as not delivered."""


class NotHandedOver(Exception):
    """Held back: an earlier message of its key (or of its consumer's batch) was not accepted."""


class PartlyHandled(Exception):
    """A handler applied the first ``handled`` messages of its batch, not the next (``cause``)."""

    def __init__(self, handled: int, cause: Exception) -> None:
        super().__init__(f"{handled} handled, then: {cause!r}")
        self.handled = handled
        self.cause = cause


def handled_before(error: Exception) -> tuple[int, Exception]:
    """How many leading messages a handler that raised ``error`` applied, and why it stopped."""
    if isinstance(error, PartlyHandled):
        return error.handled, error.cause
    return 0, error


async def publish_in_key_order(
    publish: Callable[[EventMessage], Awaitable[None]], messages: Sequence[EventMessage]
) -> list[Outcome]:
    """``publish`` each message, one key's in order and keys side by side; one outcome per message.

    Once one of a key's messages is not accepted, the key's later ones are not tried.
    """
    outcomes: list[Outcome] = [None] * len(messages)
    chains: dict[str, list[int]] = {}
    for index, message in enumerate(messages):
        chains.setdefault(message.key, []).append(index)

    async def chain(indexes: list[int]) -> None:
        for position, index in enumerate(indexes):
            try:
                await publish(messages[index])
            except Exception as exc:
                outcomes[index] = exc
                for behind in indexes[position + 1 :]:
                    outcomes[behind] = NotHandedOver(f"behind {messages[index].event_id}")
                return

    await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
    return outcomes


async def apply_in_order(
    consumer: str,
    handler: Handler,
    held: list[tuple[Delivery, EventMessage]],
    *,
    acknowledge: Callable[[list[Delivery]], Awaitable[None]],
    retry_after: float,
    stopping: Callable[[], bool],
) -> None:
    """A broker consumer's batch: ``handler`` applies it, ``acknowledge`` settles what it applied.

    What a handler did not apply stays held, in order, and is tried again after
    ``retry_after`` seconds, so a message of a key is never applied after a later one of
    that key. Returns once nothing is held, or when ``stopping()`` says so; ``held`` then
    keeps what was not applied (for the caller to hand back).
    """
    while held:
        error: Exception | None = None
        try:
            await handler([message for _, message in held])
            handled = len(held)
        except Exception as exc:
            handled, error = handled_before(exc)
        if handled:
            await acknowledge([delivery for delivery, _ in held[:handled]])
            del held[:handled]
        if error is None:
            return
        failed = held[0][1]
        log.error(
            "consumer %s failed on %s %s; it and the %d behind it wait %ss",
            consumer,
            failed.event_type,
            failed.event_id,
            len(held) - 1,
            retry_after,
            exc_info=error,
        )
        if stopping():
            return
        await asyncio.sleep(retry_after)


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

    async def publish_batch(self, messages: Sequence[EventMessage]) -> list[Outcome]:
        """Hand a relay's round over (in outbox order); one outcome per message, as ``publish`` ends."""
        ...

    async def subscribe(self, consumer: str, event_types: Collection[str], handler: Handler) -> None:
        """Start delivering the consumer's messages to ``handler`` until ``close``."""
        ...

    async def backlog(self, consumer: str) -> int:
        """Messages the broker holds for the consumer that it has not yet handled (the ops
        console's inbox backlog); raises BusUnavailable if the broker cannot say."""
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

    async def backlog(self, consumer: str) -> int:
        return 0  # publishing runs the consumers and waits: nothing is ever held for one

    async def publish(self, message: EventMessage) -> None:
        (outcome,) = await self.publish_batch([message])
        if outcome is not None:
            raise outcome

    async def publish_batch(self, messages: Sequence[EventMessage]) -> list[Outcome]:
        """Each consumer gets its share of the round as one batch (one transaction); side by side.

        A message is accepted once every consumer that takes it applied it. A consumer that
        failed on one is not given the rest of its share: they come again in a later round.
        """
        shares: dict[str, tuple[Handler, list[int]]] = {}
        for index, message in enumerate(messages):
            for consumer, handler in self._handlers.get(message.event_type, ()):
                shares.setdefault(consumer, (handler, []))[1].append(index)
        outcomes: list[Outcome] = [None] * len(messages)

        async def deliver(consumer: str, handler: Handler, indexes: list[int]) -> None:
            try:
                await handler([messages[index] for index in indexes])
            except Exception as exc:
                handled, cause = handled_before(exc)
                failed = messages[indexes[handled]]
                log.warning(
                    "consumer %s failed on %s %s: %r",
                    consumer,
                    failed.event_type,
                    failed.event_id,
                    cause,
                    exc_info=cause,
                )
                error = DeliveryFailed(f"{failed.event_type} {failed.event_id}: {consumer} failed")
                for position, index in enumerate(indexes[handled:]):
                    if outcomes[index] is None or position == 0:
                        outcomes[index] = error if position == 0 else NotHandedOver(f"{consumer} stopped")

        await asyncio.gather(*(deliver(name, *share) for name, share in shares.items()))
        return outcomes

    async def subscribe(self, consumer: str, event_types: Collection[str], handler: Handler) -> None:
        for event_type in event_types:
            self._handlers.setdefault(event_type, []).append((consumer, handler))

    async def close(self) -> None:
        self._handlers.clear()
