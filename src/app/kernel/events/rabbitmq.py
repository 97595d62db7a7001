"""The bus port on RabbitMQ (aio-pika, robust connection: it reconnects and restores by itself).

Names, all derived from ``EventSettings.namespace`` (see the helpers below):

- one durable topic exchange ``<namespace>.events``; a message's routing key is its event type;
- a consumer module is a durable queue ``<namespace>.<consumer>``, bound to the exchange once
  per event type it consumes. ``declare`` makes them up front, so messages published before a
  consumer's process first starts wait in its queue.

Messages are persistent, published with publisher confirms; ``message_id`` is the event id and
the other fields travel as headers. A consumer has up to ``consume_batch`` messages in hand
(its prefetch) and hands what has arrived to its handler as one batch, in queue order; a
message its handler refused is kept, with the ones behind it, and tried again after
``redelivery_delay_seconds``: per-key order survives failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

import aio_pika
import aio_pika.exceptions
import aiormq.exceptions
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustExchange,
    AbstractRobustQueue,
    ConsumerTag,
)
from yarl import URL

from app.kernel.config import EventSettings
from app.kernel.events.bus import (
    BusUnavailable,
    EventMessage,
    Handler,
    Outcome,
    apply_in_order,
    publish_in_key_order,
)

__all__ = ("RabbitBus", "exchange_name", "queue_name")

log = logging.getLogger("tessera.events.rabbitmq")

RECONNECT_INTERVAL_SECONDS = 1.0
CLOSE_SECONDS = 2.0  # every step of close() is bounded by this

# "The broker is not there (in time)": aio-pika's own list of connection failures, and timeouts.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    TimeoutError,
    *aio_pika.exceptions.CONNECTION_EXCEPTIONS,
)
# A declaration the broker refuses (a queue or exchange of that name exists with other
# arguments, no permission): a configuration problem that waiting will not cure.
_REFUSED: tuple[type[BaseException], ...] = (
    aiormq.exceptions.ChannelPreconditionFailed,
    aiormq.exceptions.ChannelAccessRefused,
)


def exchange_name(namespace: str) -> str:
    """The namespace's topic exchange."""
    return f"{namespace}.events"


def queue_name(namespace: str, consumer: str) -> str:
    """The durable queue of a consumer module."""
    return f"{namespace}.{consumer}"


def _check_routing_key(event_type: str) -> None:
    # A topic binding treats * and # as wildcards; an event type must match only itself.
    if not event_type or "*" in event_type or "#" in event_type or len(event_type.encode()) > 255:
        raise ValueError(f"event type {event_type!r} cannot be a RabbitMQ routing key")


@dataclass
class _Consumer:
    channel: AbstractRobustChannel
    queue: AbstractRobustQueue
    tag: ConsumerTag | None = None
    arrived: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)
    worker: asyncio.Task[None] | None = None
    busy: bool = False  # in the middle of a batch
    closing: bool = False


class RabbitBus:
    """An :class:`~app.kernel.events.bus.EventBus` on RabbitMQ (aio-pika)."""

    name = "rabbitmq"

    def __init__(self, settings: EventSettings) -> None:
        self._settings = settings
        self._namespace = settings.namespace
        self.exchange = exchange_name(settings.namespace)
        self._url = URL(settings.rabbitmq_url.reveal())
        self._where = f"amqp://{self._url.host}:{self._url.port}" if self._url.host else "RabbitMQ"
        self._timeout = settings.publish_timeout_seconds
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchange: AbstractRobustExchange | None = None
        self._consumers: dict[str, _Consumer] = {}

    # -- the port -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connect(self) -> None:
        if self._connection is not None:
            return
        connection = aio_pika.RobustConnection(
            self._url,
            reconnect_interval=RECONNECT_INTERVAL_SECONDS,
            fail_fast=True,  # the first connection fails at once; later ones are retried forever
            client_properties={"connection_name": f"tessera:{self._namespace}"},
        )
        try:
            await asyncio.wait_for(connection.connect(timeout=self._timeout), timeout=self._timeout)
            channel: AbstractRobustChannel = await asyncio.wait_for(
                connection.channel(publisher_confirms=True), timeout=self._timeout
            )
            exchange = await asyncio.wait_for(self._declare_exchange(channel), timeout=self._timeout)
        except _UNAVAILABLE as exc:
            await _discard(connection)
            raise BusUnavailable(f"RabbitMQ at {self._where} is not reachable: {exc!r}") from exc
        except BaseException:
            await _discard(connection)
            raise
        self._connection, self._channel, self._exchange = connection, channel, exchange

    async def declare(self, consumers: Mapping[str, Collection[str]]) -> None:
        connection = self._require()
        try:
            # A channel of its own: a refused declaration closes it, not the publishing one.
            async with asyncio.timeout(self._timeout * max(1, len(consumers))):
                channel = await connection.channel(publisher_confirms=False)
                try:
                    exchange = await self._declare_exchange(channel)
                    for consumer, event_types in consumers.items():
                        await self._declare_queue(channel, exchange, consumer, event_types)
                finally:
                    with contextlib.suppress(Exception):
                        await channel.close()
        except _REFUSED:
            raise
        except _UNAVAILABLE as exc:
            raise BusUnavailable(f"RabbitMQ at {self._where}: cannot declare consumers: {exc!r}") from exc

    async def backlog(self, consumer: str) -> int:
        """Messages ready in the consumer's queue (a passive declaration: it makes nothing)."""
        connection = self._require()
        try:
            async with asyncio.timeout(self._timeout):
                # A channel of its own: asking of a missing queue closes the channel it asks on.
                channel = await connection.channel(publisher_confirms=False)
                try:
                    queue = await channel.declare_queue(queue_name(self._namespace, consumer), passive=True)
                finally:
                    with contextlib.suppress(Exception):
                        await channel.close()
        except Exception as exc:
            raise BusUnavailable(
                f"RabbitMQ at {self._where}: no state of {consumer}'s queue: {exc!r}"
            ) from exc
        result = queue.declaration_result
        return int(result.message_count or 0) if result is not None else 0

    async def publish(self, message: EventMessage) -> None:
        if self._exchange is None:
            raise BusUnavailable("the RabbitMQ bus is not connected")
        _check_routing_key(message.event_type)
        outgoing = aio_pika.Message(
            body=message.payload,
            message_id=message.event_id,
            headers=dict(message.headers()),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            # While the connection is being restored, aio-pika waits for it: the timeout bounds that.
            async with asyncio.timeout(self._timeout):
                await self._exchange.publish(
                    outgoing, routing_key=message.event_type, mandatory=False, timeout=self._timeout
                )
        except aio_pika.exceptions.DeliveryError as exc:  # the broker nacked it (e.g. overloaded)
            raise BusUnavailable(
                f"RabbitMQ at {self._where} refused {message.event_type} {message.event_id}: {exc!r}"
            ) from exc
        except _UNAVAILABLE as exc:
            raise BusUnavailable(
                f"RabbitMQ at {self._where} did not confirm {message.event_type} "
                f"{message.event_id} within {self._timeout}s: {exc!r}"
            ) from exc

    async def publish_batch(self, messages: Sequence[EventMessage]) -> list[Outcome]:
        return await publish_in_key_order(self.publish, messages)

    async def subscribe(self, consumer: str, event_types: Collection[str], handler: Handler) -> None:
        if consumer in self._consumers:
            raise ValueError(f"consumer {consumer!r} is already subscribed")
        wanted = frozenset(event_types)
        if not wanted:
            return
        connection = self._require()
        channel: AbstractRobustChannel | None = None
        state: _Consumer | None = None
        try:
            async with asyncio.timeout(self._timeout * 2):
                channel = await connection.channel(publisher_confirms=False)
                await channel.set_qos(prefetch_count=self._settings.consume_batch)
                exchange = await self._declare_exchange(channel)
                # Normally declare() made it; a consumer started on its own still gets its queue.
                queue = await self._declare_queue(channel, exchange, consumer, wanted)
                state = _Consumer(channel=channel, queue=queue)
                state.worker = asyncio.create_task(
                    self._work(consumer, wanted, handler, state), name=f"rabbitmq-consumer:{consumer}"
                )

                async def on_message(incoming: AbstractIncomingMessage) -> None:
                    state.arrived.put_nowait(incoming)

                state.tag = await queue.consume(on_message, no_ack=False)
        except BaseException as exc:
            if state is not None and state.worker is not None:
                state.worker.cancel()
            if channel is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(channel.close(), timeout=CLOSE_SECONDS)
            if isinstance(exc, _UNAVAILABLE) and not isinstance(exc, _REFUSED):
                raise BusUnavailable(
                    f"RabbitMQ at {self._where}: cannot subscribe {consumer}: {exc!r}"
                ) from exc
            raise
        self._consumers[consumer] = state

    async def close(self) -> None:
        consumers = list(self._consumers.values())
        self._consumers.clear()
        connected = self._connection is not None and self._connection.connected.is_set()
        if connected and consumers:  # no new deliveries (in an outage: nothing to wait for)
            cancels = [state.queue.cancel(state.tag) for state in consumers if state.tag is not None]
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*cancels, return_exceptions=True), CLOSE_SECONDS)
        # Let handlers finish the batch in hand (cancelling one mid-transaction leaves its
        # database connection half-closed); cancel the idle ones, and those that outlast the grace.
        running = []
        for state in consumers:
            state.closing = True
            if state.worker is not None:
                running.append(state.worker)
                if not state.busy:
                    state.worker.cancel()
        if running:
            _, late = await asyncio.wait(running, timeout=CLOSE_SECONDS)
            for task in late:
                task.cancel()  # its message goes back to the queue when the channel closes
            if late:
                await asyncio.wait(late, timeout=CLOSE_SECONDS)
        connection = self._connection
        self._connection = self._channel = self._exchange = None
        if connection is not None:
            await _discard(connection)

    # -- durable state --------------------------------------------------------------------

    def _require(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BusUnavailable("the RabbitMQ bus is not connected")
        return self._connection

    async def _declare_exchange(self, channel: AbstractRobustChannel) -> AbstractRobustExchange:
        exchange: AbstractRobustExchange = await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return exchange

    async def _declare_queue(
        self,
        channel: AbstractRobustChannel,
        exchange: AbstractRobustExchange,
        consumer: str,
        event_types: Collection[str],
    ) -> AbstractRobustQueue:
        for event_type in event_types:
            _check_routing_key(event_type)
        queue: AbstractRobustQueue = await channel.declare_queue(
            queue_name(self._namespace, consumer), durable=True
        )
        # Bindings are only ever added: AMQP cannot list a queue's bindings, and a message of a
        # type the consumer no longer wants is acknowledged unhandled by _deliver.
        for event_type in sorted(set(event_types)):
            await queue.bind(exchange, routing_key=event_type)
        return queue

    # -- delivery -------------------------------------------------------------------------

    async def _work(
        self, consumer: str, event_types: frozenset[str], handler: Handler, state: _Consumer
    ) -> None:
        """Hand what has arrived to the handler, a batch at a time, until closed."""
        while not state.closing:
            batch = [await state.arrived.get()]
            while len(batch) < self._settings.consume_batch and not state.arrived.empty():
                batch.append(state.arrived.get_nowait())
            state.busy = True
            try:
                await self._deliver(consumer, event_types, handler, batch, state)
            finally:
                state.busy = False

    async def _deliver(
        self,
        consumer: str,
        event_types: frozenset[str],
        handler: Handler,
        batch: list[AbstractIncomingMessage],
        state: _Consumer,
    ) -> None:
        held: list[tuple[AbstractIncomingMessage, EventMessage]] = []
        for incoming in batch:
            try:
                message = _to_message(incoming)
            except ValueError as exc:
                log.error("consumer %s dropped an unreadable message: %s", consumer, exc)
                await _settle(consumer, "reject", incoming.reject(requeue=False))
                continue
            if message.event_type not in event_types:
                await _settle(consumer, "ack", incoming.ack())  # an old binding's type
                continue
            held.append((incoming, message))
        try:
            await apply_in_order(
                consumer,
                handler,
                held,
                acknowledge=functools.partial(_acknowledge, consumer),
                retry_after=self._settings.redelivery_delay_seconds,
                stopping=lambda: state.closing,
            )
        finally:
            for incoming, _ in held:  # closing: back to the queue, at their place
                await _settle(consumer, "nack", incoming.nack(requeue=True))


async def _acknowledge(consumer: str, applied: list[AbstractIncomingMessage]) -> None:
    """One ack for the batch: the last one's, with ``multiple``, covers those before it."""
    await _settle(consumer, "ack", applied[-1].ack(multiple=True))


def _text(value: object) -> str | None:
    """A header's text; None for what is not text (the broker's own, such as ``x-death``)."""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode()
    return value if isinstance(value, str) else None


def _to_message(incoming: AbstractIncomingMessage) -> EventMessage:
    headers = {name: _text(value) for name, value in (incoming.headers or {}).items()}
    return EventMessage.from_headers(
        headers, incoming.body, event_id=incoming.message_id, event_type=incoming.routing_key
    )


async def _settle(consumer: str, what: str, settling: Awaitable[object]) -> None:
    # An ack that cannot be sent (the channel is gone) is not fatal: the broker requeues the
    # unacknowledged message, and the consumer's inbox makes the second delivery harmless.
    try:
        await settling
    except Exception as exc:
        log.warning("consumer %s could not %s a message: %r", consumer, what, exc)


async def _discard(connection: AbstractRobustConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), timeout=CLOSE_SECONDS)
