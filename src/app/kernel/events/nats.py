"""The bus port on NATS JetStream.

Names, all derived from ``EventSettings.namespace`` (see the helpers below):

- one stream, ``<NAMESPACE>_EVENTS`` (upper case, anything but letters and digits as ``_``),
  holding the subjects ``<namespace>.events.>`` with limits retention (``retention_hours``),
  file storage and a two-minute de-duplication window;
- a message's subject is ``<namespace>.events.<event_type>``; its body is the payload, its
  other fields travel as headers (``Nats-Msg-Id`` carries the event id for de-duplication);
- a consumer module is a durable pull consumer ``<namespace>_<consumer>`` filtered on the
  subjects of its event types.

Order: a consumer waits for one message, then takes what else is ready up to
``consume_batch`` (its ``max_ack_pending``), hands them to its handler as one batch in
stream order, and fetches again only once every one is applied: a message its handler
refused is kept and tried again after ``redelivery_delay_seconds`` with the ones behind it
still waiting: per-key order survives failures.

Why one, then the rest: nats-py's ``fetch(n)`` shares one reply subject between all of a
consumer's pull requests, so a request it gave up on (its expiry racing the client's
timer) stays open on the server and takes the next message; a later ``fetch(n)`` then gets
that message and waits out its whole timeout for the other ``n - 1`` (nats-io/nats.py#933:
seen here as a notification 1.8 s late). ``fetch(1)`` returns on the first message
whichever request it came by, and the top-up's requests live ``TOP_UP_SECONDS`` at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
from collections.abc import Awaitable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from app.kernel.config import EventSettings
from app.kernel.events.bus import (
    BusUnavailable,
    EventMessage,
    Handler,
    Outcome,
    apply_in_order,
    publish_in_key_order,
)

__all__ = ("NatsBus", "durable_name", "stream_name", "subject_of")

log = logging.getLogger("tessera.events.nats")

DUPLICATE_WINDOW_SECONDS = 120.0  # Nats-Msg-Id de-duplication
FETCH_SECONDS = 2.0  # one pull request's lifetime; an idle consumer asks again after it
TOP_UP_SECONDS = 0.02  # after the first message, how long a batch waits for more
RETRY_PAUSE_SECONDS = 0.5  # after an unexpected error in the fetch loop
CONSUMER_CHECK_SECONDS = 15.0  # an idle consumer checks this often that the server still has it
CLOSE_SECONDS = 2.0  # every step of close() is bounded by this
RECONNECT_WAIT_SECONDS = 1

HEADER_MSG_ID = "Nats-Msg-Id"  # JetStream's de-duplication key: the event id

# Errors that mean "the broker is not there (in time)", as opposed to "this message is refused".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    TimeoutError,  # asyncio's, and nats.errors.TimeoutError
    OSError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoServersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
)
_STREAM_NAME_IN_USE = 10058  # JetStream: "stream name already in use with a different configuration"
_SUBJECT_TOKEN = re.compile(r"[^\s.*>]+")


def stream_name(namespace: str) -> str:
    """The namespace's stream: stream names allow no dots, so ``tessera.dev`` -> ``TESSERA_DEV_EVENTS``."""
    return re.sub(r"[^A-Z0-9]", "_", namespace.upper()) + "_EVENTS"


def subject_of(namespace: str, event_type: str) -> str:
    """The subject a message of ``event_type`` is published on."""
    return f"{namespace}.events.{event_type}"


def durable_name(namespace: str, consumer: str) -> str:
    """The durable pull consumer of a consumer module (letters, digits, ``_`` and ``-`` only)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{namespace}_{consumer}")


def _check_subject_part(what: str, value: str) -> None:
    if not all(_SUBJECT_TOKEN.fullmatch(token) for token in value.split(".")):
        raise ValueError(f"{what} {value!r} cannot be part of a NATS subject")


def _check_header(what: str, value: str) -> None:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{what} {value!r} cannot be a NATS header value")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 4222}" if parts.hostname else "NATS"


class NatsBus:
    """An :class:`~app.kernel.events.bus.EventBus` on NATS JetStream (nats-py)."""

    name = "nats"

    def __init__(self, settings: EventSettings) -> None:
        if settings.namespace:  # empty: not derived yet (the runtime refuses to start so)
            _check_subject_part("namespace", settings.namespace)
        self._settings = settings
        self._namespace = settings.namespace
        self.stream = stream_name(settings.namespace)
        self._url = settings.nats_url.reveal()
        self._where = _redacted(self._url)
        self._timeout = settings.publish_timeout_seconds
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._stream_ready = False
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._closing = False  # set by close(): consumers stop after the message in hand
        self._handling: set[str] = set()  # consumers in the middle of a message
        self._first_error: asyncio.Future[Exception] | None = None

    # -- the port -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.is_connected

    async def connect(self) -> None:
        if self._client is not None:
            return
        self._closing = False
        client = Client()
        # nats-py retries even the first connection forever (max_reconnect_attempts=-1, which
        # later outages need): the first error it reports ends the attempt instead, and the
        # outer bound covers a server that accepts the connection but never answers.
        first_error: asyncio.Future[Exception] = asyncio.get_running_loop().create_future()
        self._first_error = first_error
        connecting = asyncio.ensure_future(
            client.connect(
                servers=[self._url],
                name=f"tessera:{self._namespace}",
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=RECONNECT_WAIT_SECONDS,
                connect_timeout=max(1, math.ceil(self._timeout)),
                ping_interval=20,
                max_outstanding_pings=3,
                drain_timeout=math.ceil(CLOSE_SECONDS),
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        )
        waiting: set[asyncio.Future[Any]] = {connecting, first_error}
        try:
            await asyncio.wait(waiting, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._first_error = None
            if not connecting.done():
                connecting.cancel()  # no answer in time, or connect() itself was cancelled
                await asyncio.gather(connecting, return_exceptions=True)
        if connecting.cancelled() or connecting.exception() is not None:
            problem = _connect_problem(connecting, first_error)
            await _discard(client)
            raise BusUnavailable(f"NATS at {self._where} is not reachable: {problem!r}") from problem
        self._client = client
        self._js = client.jetstream(timeout=self._timeout)
        try:
            await self._ensure_stream()
        except BaseException:
            await self.close()
            raise

    async def declare(self, consumers: Mapping[str, Collection[str]]) -> None:
        await self._ensure_stream()
        for consumer, event_types in consumers.items():
            await self._ensure_consumer(consumer, event_types, replace_changed=True)

    async def publish(self, message: EventMessage) -> None:
        js = self._jetstream()
        _check_subject_part("event type", message.event_type)
        headers = {HEADER_MSG_ID: message.event_id, **message.headers()}
        for header, value in headers.items():
            _check_header(header, value)
        if not self._stream_ready:
            await self._ensure_stream()
        try:
            await js.publish(
                subject_of(self._namespace, message.event_type),
                message.payload,
                timeout=self._timeout,
                stream=self.stream,
                headers=headers,
            )
        except _UNAVAILABLE as exc:
            if isinstance(exc, nats.js.errors.NoStreamResponseError):
                self._stream_ready = False  # deleted behind our back? make it again next time
            raise BusUnavailable(
                f"NATS at {self._where} did not take {message.event_type} {message.event_id} "
                f"(timeout {self._timeout}s): {exc!r}"
            ) from exc

    async def publish_batch(self, messages: Sequence[EventMessage]) -> list[Outcome]:
        return await publish_in_key_order(self.publish, messages)

    async def subscribe(self, consumer: str, event_types: Collection[str], handler: Handler) -> None:
        if consumer in self._consumers:
            raise ValueError(f"consumer {consumer!r} is already subscribed")
        wanted = frozenset(event_types)
        if not wanted:
            return
        js = self._jetstream()
        # Normally declare() made it; a consumer started on its own still gets its durable state.
        await self._ensure_consumer(consumer, wanted, replace_changed=False)
        durable = durable_name(self._namespace, consumer)
        try:
            subscription = await js.pull_subscribe_bind(durable=durable, stream=self.stream)
        except _UNAVAILABLE as exc:
            raise BusUnavailable(f"NATS at {self._where}: cannot subscribe {durable}: {exc!r}") from exc
        self._consumers[consumer] = asyncio.create_task(
            self._consume(consumer, wanted, handler, subscription), name=f"nats-consumer:{durable}"
        )

    async def close(self) -> None:
        consumers = list(self._consumers.items())
        self._consumers.clear()
        # A consumer waiting on a fetch is cancelled at once; one handling a message finishes
        # it first (cancelling a handler mid-transaction leaves its connection half-closed).
        self._closing = True
        for name, task in consumers:
            if name not in self._handling:
                task.cancel()
        tasks = [task for _, task in consumers]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=CLOSE_SECONDS)
        client, self._client, self._js = self._client, None, None
        self._stream_ready = False
        if client is not None:
            await _discard(client)

    async def backlog(self, consumer: str) -> int:
        """Messages not yet delivered to the consumer, plus those delivered and not yet acked."""
        durable = durable_name(self._namespace, consumer)
        try:
            info = await asyncio.wait_for(
                self._jetstream().consumer_info(self.stream, durable), timeout=self._timeout
            )
        except BusUnavailable:
            raise
        except Exception as exc:
            raise BusUnavailable(f"NATS at {self._where}: no state of {durable}: {exc!r}") from exc
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    # -- durable state --------------------------------------------------------------------

    def _jetstream(self) -> JetStreamContext:
        if self._js is None:
            raise BusUnavailable("the NATS bus is not connected")
        return self._js

    async def _ensure_stream(self) -> None:
        js = self._jetstream()
        config = api.StreamConfig(
            name=self.stream,
            description=f"Tessera integration events of namespace {self._namespace}",
            subjects=[f"{self._namespace}.events.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            max_age=self._settings.retention_hours * 3600.0,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
                await js.update_stream(config)  # e.g. retention_hours changed
        except _UNAVAILABLE as exc:
            raise BusUnavailable(
                f"NATS at {self._where}: cannot create stream {self.stream}: {exc!r}"
            ) from exc
        self._stream_ready = True

    def _consumer_config(self, consumer: str, event_types: Collection[str]) -> api.ConsumerConfig:
        subjects = sorted({subject_of(self._namespace, event_type) for event_type in event_types})
        for event_type in event_types:
            _check_subject_part("event type", event_type)
        config = api.ConsumerConfig(
            durable_name=durable_name(self._namespace, consumer),
            description=f"Tessera consumer {consumer}",
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.EXPLICIT,
            ack_wait=self._settings.ack_wait_seconds,
            max_ack_pending=self._settings.consume_batch,
        )
        if len(subjects) == 1:
            return config.evolve(filter_subject=subjects[0])
        if self._supports_filter_subjects():
            return config.evolve(filter_subjects=subjects)
        # Before nats-server 2.10 a consumer filters on one subject only (and silently ignores
        # filter_subjects): take the namespace's whole stream; _consume acks the other types.
        return config.evolve(filter_subject=f"{self._namespace}.events.>")

    def _supports_filter_subjects(self) -> bool:
        if self._client is None:
            return False
        version = self._client.connected_server_version
        return (version.major, version.minor) >= (2, 10)

    async def _ensure_consumer(
        self, consumer: str, event_types: Collection[str], *, replace_changed: bool
    ) -> None:
        if not event_types:
            return
        js = self._jetstream()
        wanted = self._consumer_config(consumer, event_types)
        durable = wanted.durable_name
        assert durable is not None
        try:
            try:
                info: api.ConsumerInfo | None = await js.consumer_info(self.stream, durable)
            except nats.js.errors.NotFoundError:
                info = None
            if info is None:
                await js.add_consumer(self.stream, wanted)
                return
            if not replace_changed or _same_consumer(info.config, wanted):
                return
            # nats-server 2.9 accepts a changed filter in place but then delivers nothing, so
            # replace the consumer instead, resuming just after what it had acknowledged.
            acked = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
            log.info("replacing NATS consumer %s (new event types), resuming at %d", durable, acked + 1)
            await js.delete_consumer(self.stream, durable)
            await js.add_consumer(
                self.stream,
                wanted.evolve(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=acked + 1),
            )
        except _UNAVAILABLE as exc:
            raise BusUnavailable(
                f"NATS at {self._where}: cannot declare consumer {durable}: {exc!r}"
            ) from exc

    # -- delivery -------------------------------------------------------------------------

    async def _consume(
        self,
        consumer: str,
        event_types: frozenset[str],
        handler: Handler,
        subscription: JetStreamContext.PullSubscription,
    ) -> None:
        """Fetch and handle the consumer's messages a batch at a time, until cancelled."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while not self._closing:
            try:
                batch = await subscription.fetch(1, timeout=FETCH_SECONDS)
            except TimeoutError:
                # Nothing new, or the server is away (nats-py is reconnecting), or the consumer
                # is gone (a server that lost its state answers a pull on it with silence).
                if loop.time() - checked >= CONSUMER_CHECK_SECONDS:
                    checked = loop.time()
                    await self._recover_consumer(consumer, event_types)
                continue
            except nats.js.errors.NotFoundError:
                await self._recover_consumer(consumer, event_types)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            except Exception as exc:
                log.warning("NATS fetch for %s failed: %r", consumer, exc)
                await asyncio.sleep(RETRY_PAUSE_SECONDS)
                continue
            checked = loop.time()
            batch += await self._top_up(consumer, subscription)
            self._handling.add(consumer)
            try:
                await self._deliver(consumer, event_types, handler, batch)
            finally:
                self._handling.discard(consumer)

    async def _top_up(self, consumer: str, subscription: JetStreamContext.PullSubscription) -> list[Msg]:
        """What else is ready to go with a batch's first message (nothing, if none comes at once)."""
        more = self._settings.consume_batch - 1
        if more <= 0:
            return []
        try:
            return await subscription.fetch(more, timeout=TOP_UP_SECONDS)
        except TimeoutError:
            return []
        except Exception as exc:  # the first message goes on alone; the next fetch sees the trouble
            log.debug("NATS top-up fetch for %s failed: %r", consumer, exc)
            return []

    async def _recover_consumer(self, consumer: str, event_types: frozenset[str]) -> None:
        """Make the consumer (and its stream) again if the server lost them."""
        durable = durable_name(self._namespace, consumer)
        try:
            await self._jetstream().consumer_info(self.stream, durable)
            return
        except nats.js.errors.NotFoundError:
            log.warning("NATS consumer %s is gone; declaring it again", durable)
        except Exception:
            return  # unreachable now: the next round asks again
        with contextlib.suppress(BusUnavailable):
            await self._ensure_stream()
            await self._ensure_consumer(consumer, event_types, replace_changed=False)

    async def _deliver(
        self, consumer: str, event_types: frozenset[str], handler: Handler, batch: list[Msg]
    ) -> None:
        held: list[tuple[Msg, EventMessage]] = []
        for msg in batch:
            try:
                message = self._to_message(msg)
            except ValueError as exc:
                log.error("consumer %s dropped an unreadable message on %s: %s", consumer, msg.subject, exc)
                await _settle(consumer, "term", msg.term())
                continue
            if message.event_type not in event_types:
                await _settle(consumer, "ack", msg.ack())  # not for this consumer (wide filter)
                continue
            held.append((msg, message))
        keep_alive = asyncio.create_task(_keep_in_progress(held, self._settings.ack_wait_seconds))
        try:
            await apply_in_order(
                consumer,
                handler,
                held,
                acknowledge=functools.partial(self._acknowledge, consumer),
                retry_after=self._settings.redelivery_delay_seconds,
                stopping=lambda: self._closing,
            )
        finally:
            keep_alive.cancel()
            # Shutting down mid-batch: hand back what is left at once rather than after ack_wait.
            for msg, _ in held:
                with contextlib.suppress(Exception):
                    await msg.nak()

    async def _acknowledge(self, consumer: str, msgs: list[Msg]) -> None:
        *first, last = msgs
        for msg in first:
            await _settle(consumer, "ack", msg.ack())
        # Synchronous: once it returns, JetStream has recorded this ack and the ones sent before it.
        await _settle(consumer, "ack", last.ack_sync(timeout=self._timeout))

    def _to_message(self, msg: Msg) -> EventMessage:
        headers = msg.headers or {}
        prefix = f"{self._namespace}.events."
        return EventMessage.from_headers(
            headers,
            msg.data,
            event_id=headers.get(HEADER_MSG_ID),
            event_type=msg.subject.removeprefix(prefix),
        )

    # -- connection callbacks -------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        if self._first_error is not None:  # connect() reports it
            if not self._first_error.done():
                self._first_error.set_result(exc)
            return
        log.warning("NATS at %s: %r", self._where, exc)

    async def _on_disconnected(self) -> None:
        # nats-py also calls this on a failed first attempt and on close(): stay quiet then.
        if self._client is not None and not self._client.is_closed:
            log.warning("NATS at %s: disconnected; reconnecting", self._where)

    async def _on_reconnected(self) -> None:
        log.warning("NATS at %s: reconnected", self._where)


def _connect_problem(
    connecting: asyncio.Future[None], first_error: asyncio.Future[Exception]
) -> BaseException:
    if first_error.done():
        return first_error.result()
    if not connecting.cancelled() and (problem := connecting.exception()) is not None:
        return problem
    return TimeoutError("no answer in time")


def _same_consumer(actual: api.ConsumerConfig, wanted: api.ConsumerConfig) -> bool:
    def filters(config: api.ConsumerConfig) -> tuple[str, ...]:
        if config.filter_subjects:
            return tuple(sorted(config.filter_subjects))
        return (config.filter_subject,) if config.filter_subject else ()

    return (
        filters(actual) == filters(wanted)
        and actual.max_ack_pending == wanted.max_ack_pending
        and actual.ack_wait == wanted.ack_wait
    )


async def _keep_in_progress(held: list[tuple[Msg, EventMessage]], ack_wait: float) -> None:
    """Tell JetStream the messages in hand are still being worked on, so it does not redeliver them."""
    while True:
        await asyncio.sleep(ack_wait / 3)
        for msg, _ in list(held):
            with contextlib.suppress(Exception):
                await msg.in_progress()


async def _settle(consumer: str, what: str, settling: Awaitable[object]) -> None:
    # An ack that cannot be sent (connection lost) is not fatal: JetStream redelivers after
    # ack_wait, and the consumer's inbox makes the second delivery harmless.
    try:
        await settling
    except Exception as exc:
        log.warning("consumer %s could not %s a message: %r", consumer, what, exc)


async def _discard(client: Client) -> None:
    """Close a client, bounded: drain when connected, otherwise just close."""
    if client.is_closed:
        return
    if client.is_connected:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.drain(), timeout=CLOSE_SECONDS)
    if not client.is_closed:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.close(), timeout=CLOSE_SECONDS)
