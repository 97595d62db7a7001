"""One behavioural suite for every event-bus backend: in-process, NATS JetStream, RabbitMQ.

The broker backends talk to the real servers on this machine (TEST_NATS_URL,
TEST_RABBITMQ_URL); each test gets a namespace of its own, so tests never see each other's
messages, and removes its stream, exchange and queues afterwards. A missing broker skips
its tests locally and fails them under CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import aio_pika
import msgspec
import nats
import nats.js.errors
import pytest

from app.kernel.config import EventSettings, Secret
from app.kernel.events import nats as nats_backend
from app.kernel.events.bus import (
    BusUnavailable,
    DeliveryFailed,
    EventBus,
    EventMessage,
    InProcessBus,
    NotHandedOver,
    PartlyHandled,
)
from app.kernel.events.nats import NatsBus, durable_name, stream_name, subject_of
from app.kernel.events.rabbitmq import RabbitBus, exchange_name, queue_name
from tests.conftest import service_unavailable
from tests.tcp_proxy import TcpProxy

NATS_URL = os.environ.get("TEST_NATS_URL", "nats://127.0.0.1:4222")
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

PUBLISH_TIMEOUT = 1.0
REDELIVERY_DELAY = 0.3
DEADLINE = 8.0  # for anything the test waits on; a green run takes a fraction of it
SLACK = 1.5  # on top of PUBLISH_TIMEOUT for "fails fast"

ASSIGNED = "tasks.TaskAssigned.v1"
CREATED = "tasks.TaskCreated.v1"
DEACTIVATED = "identity.UserDeactivated.v1"
# Every consumer name a test uses: the RabbitMQ clean-up deletes their queues.
CONSUMERS = ("alpha", "beta", "gamma", "late", "flaky", "ordered", "proxied", "dedup", "grow", "amnesia")

ALL = ["inprocess", "nats", "rabbitmq"]
# Durability and outages are a broker's: the in-process bus keeps nothing (a message counts as
# published only once every consumer handled it; the outbox is its durability) and has no
# broker to lose, so those tests run on the brokers alone.
BROKERS = ["nats", "rabbitmq"]
REMOTE = BROKERS


# -- harness ------------------------------------------------------------------------------


@dataclass
class Backend:
    """One backend under test, with a namespace of its own and the buses it made."""

    name: str
    settings: EventSettings
    buses: list[EventBus] = field(default_factory=list)
    shared: InProcessBus = field(default_factory=InProcessBus)

    def new_bus(self, *, via_port: int | None = None) -> EventBus:
        """A new bus object (a new "process"); the in-process backend has only one."""
        settings = self.settings
        if via_port is not None:
            settings = msgspec.structs.replace(
                settings,
                nats_url=Secret(_with_port(NATS_URL, via_port)),
                rabbitmq_url=Secret(_with_port(RABBITMQ_URL, via_port)),
            )
        bus: EventBus
        if self.name == "nats":
            bus = NatsBus(settings)
        elif self.name == "rabbitmq":
            bus = RabbitBus(settings)
        else:
            bus = self.shared
        self.buses.append(bus)
        return bus

    async def bus(self) -> EventBus:
        bus = self.new_bus()
        await bus.connect()
        return bus

    @property
    def broker_port(self) -> int:
        return urlsplit(NATS_URL if self.name == "nats" else RABBITMQ_URL).port or 0

    async def aclose(self) -> None:
        for bus in reversed(self.buses):
            await asyncio.wait_for(bus.close(), timeout=DEADLINE)
        await self.wipe()

    async def wipe(self) -> None:
        """Delete the namespace's stream, or its queues and exchange, behind the buses' backs."""
        namespace = self.settings.namespace
        with contextlib.suppress(Exception):
            if self.name == "nats":
                client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
                try:
                    with contextlib.suppress(nats.js.errors.NotFoundError):
                        await client.jetstream().delete_stream(stream_name(namespace))
                finally:
                    await client.close()
            elif self.name == "rabbitmq":
                connection = await aio_pika.connect(RABBITMQ_URL, timeout=2)
                async with connection:
                    for consumer in CONSUMERS:
                        with contextlib.suppress(Exception):
                            channel = await connection.channel()
                            await channel.queue_delete(queue_name(namespace, consumer))
                            await channel.close()
                    channel = await connection.channel()
                    await channel.exchange_delete(exchange_name(namespace))


def _with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(params=ALL)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    settings = msgspec.structs.replace(
        EventSettings(),
        bus=request.param,
        namespace=f"t{uuid4().hex[:10]}",
        nats_url=Secret(NATS_URL),
        rabbitmq_url=Secret(RABBITMQ_URL),
        publish_timeout_seconds=PUBLISH_TIMEOUT,
        redelivery_delay_seconds=REDELIVERY_DELAY,
        retention_hours=1.0,
    )
    harness = Backend(request.param, settings)
    probe = harness.new_bus()
    try:
        await probe.connect()
    except BusUnavailable as exc:
        service_unavailable(f"{request.param}: {exc}")
    harness.buses.remove(probe)
    await probe.close()
    try:
        yield harness
    finally:
        await harness.aclose()


class Recorder:
    """A handler that keeps what it was given, and refuses each message ``refusals`` times."""

    def __init__(self, *, refusals: int = 0, only: Collection[str] | None = None) -> None:
        self.refusals = refusals
        self.only = only  # the event ids it refuses (None: every one)
        self.attempts: list[tuple[float, EventMessage]] = []
        self.handled: list[EventMessage] = []
        self.batches: list[int] = []  # messages per call

    async def __call__(self, messages: Sequence[EventMessage]) -> None:
        """A batch, in order; a refusal stops it there (the ones before it count as handled)."""
        self.batches.append(len(messages))
        for handled, message in enumerate(messages):
            self.attempts.append((time.monotonic(), message))
            tries = sum(1 for _, seen in self.attempts if seen.event_id == message.event_id)
            if tries <= self.refusals and (self.only is None or message.event_id in self.only):
                refusal = RuntimeError(f"refusing {message.event_id} (as told)")
                raise PartlyHandled(handled, refusal) if handled else refusal
            self.handled.append(message)

    def attempts_of(self, message: EventMessage) -> list[float]:
        return [at for at, seen in self.attempts if seen.event_id == message.event_id]


def event(
    event_type: str = ASSIGNED, *, key: str = "task-1", correlation_id: str | None = "req-1"
) -> EventMessage:
    event_id = str(uuid4())
    return EventMessage(
        event_id=event_id,
        event_type=event_type,
        source=event_type.partition(".")[0],
        key=key,
        payload=msgspec.json.encode({"type": event_type, "id": event_id, "key": key}),
        correlation_id=correlation_id,
    )


async def wait_until(condition: Callable[[], bool], what: str, within: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"not within {within}s: {what}")
        await asyncio.sleep(0.01)


async def holds(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether ``condition`` stays true for ``seconds`` (a bounded wait for "nothing more comes")."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not condition():
            return False
        await asyncio.sleep(0.02)
    return condition()


async def hand_over(bus: EventBus, message: EventMessage) -> None:
    """Publish as the outbox relay does: the in-process bus fails while a handler fails."""
    for _ in range(50):
        try:
            await bus.publish(message)
            return
        except DeliveryFailed:
            await asyncio.sleep(REDELIVERY_DELAY)
    pytest.fail(f"{message.event_id} was never delivered")


async def publish_eventually(bus: EventBus, message: EventMessage, within: float = DEADLINE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            await bus.publish(message)
            return
        except BusUnavailable:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.1)


# -- the behaviours -----------------------------------------------------------------------


async def test_every_subscribed_consumer_gets_the_message_whole(backend: Backend) -> None:
    bus = await backend.bus()
    await bus.declare({"alpha": [ASSIGNED], "beta": [ASSIGNED, CREATED], "gamma": [DEACTIVATED]})
    alpha, beta, gamma = Recorder(), Recorder(), Recorder()
    await bus.subscribe("alpha", [ASSIGNED], alpha)
    await bus.subscribe("beta", [ASSIGNED, CREATED], beta)
    await bus.subscribe("gamma", [DEACTIVATED], gamma)

    assigned = msgspec.structs.replace(event(ASSIGNED), payload=b'{"binary":"\x00\xff\xfe"}')
    deactivated = event(DEACTIVATED, key="user-7", correlation_id=None)
    # Published after the one alpha must not get: alpha sees its queue in order, so by the
    # time this one arrives, a wrongly routed message would have arrived too.
    again = event(ASSIGNED, key="tâche-2", correlation_id=None)
    for message in (assigned, deactivated, again):
        await hand_over(bus, message)

    await wait_until(lambda: len(alpha.handled) >= 2, "alpha got both TaskAssigned")
    await wait_until(lambda: len(beta.handled) >= 2, "beta got both TaskAssigned")
    await wait_until(lambda: len(gamma.handled) >= 1, "gamma got UserDeactivated")
    assert alpha.handled == [assigned, again]
    assert beta.handled == [assigned, again]
    assert gamma.handled == [deactivated]
    assert alpha.handled[1].correlation_id is None


@pytest.mark.parametrize("backend", BROKERS, indirect=True)
async def test_a_declared_consumer_gets_what_was_published_before_it_subscribed(backend: Backend) -> None:
    publisher = await backend.bus()
    await publisher.declare({"late": [ASSIGNED]})
    early = [event(key="task-1"), event(key="task-2")]
    for message in early:
        await publisher.publish(message)

    consumer_process = await backend.bus()  # another process, starting later
    late = Recorder()
    await consumer_process.subscribe("late", [ASSIGNED], late)
    await wait_until(lambda: len(late.handled) >= 2, "the late consumer got the earlier messages")
    assert late.handled == early


async def test_a_refused_message_comes_again_and_is_settled_once_handled(backend: Backend) -> None:
    bus = await backend.bus()
    await bus.declare({"flaky": [ASSIGNED]})
    flaky = Recorder(refusals=2)
    await bus.subscribe("flaky", [ASSIGNED], flaky)

    message = event()
    await hand_over(bus, message)
    await wait_until(lambda: flaky.handled == [message], "the refused message handled at the third try")
    attempts = flaky.attempts_of(message)
    assert len(attempts) == 3
    assert all(seen == message for _, seen in flaky.attempts)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert min(gaps) >= REDELIVERY_DELAY * 0.8, f"redelivered too soon: {gaps}"

    # Acknowledged: a later message gets through, and the first one never comes back.
    sentinel = event(key="task-2")
    await hand_over(bus, sentinel)
    await wait_until(lambda: sentinel in flaky.handled, "a later message handled")
    assert await holds(lambda: len(flaky.attempts_of(message)) == 3, REDELIVERY_DELAY * 3)
    assert flaky.handled == [message, sentinel]


async def test_one_keys_messages_arrive_in_the_order_they_were_published(backend: Backend) -> None:
    bus = await backend.bus()
    await bus.declare({"ordered": [ASSIGNED, CREATED]})
    ordered = Recorder()
    await bus.subscribe("ordered", [ASSIGNED, CREATED], ordered)

    published = [
        event(CREATED if n % 3 == 0 else ASSIGNED, key=f"task-{n % 2}", correlation_id=f"req-{n}")
        for n in range(24)
    ]
    for message in published:
        await hand_over(bus, message)
    await wait_until(lambda: len(ordered.handled) >= len(published), "every message handled")
    for key in ("task-0", "task-1"):
        assert [m for m in ordered.handled if m.key == key] == [m for m in published if m.key == key]
    assert sorted(m.event_id for m in ordered.handled) == sorted(m.event_id for m in published)


async def test_a_refused_message_holds_back_the_ones_behind_it(backend: Backend) -> None:
    bus = await backend.bus()
    await bus.declare({"ordered": [ASSIGNED]})
    ordered = Recorder(refusals=1)
    await bus.subscribe("ordered", [ASSIGNED], ordered)
    published = [event(key="task-1", correlation_id=f"req-{n}") for n in range(3)]
    for message in published:
        await hand_over(bus, message)
    await wait_until(lambda: len(ordered.handled) >= len(published), "every message handled")
    assert ordered.handled == published


async def test_a_round_goes_over_as_batches_and_a_refusal_holds_back_only_what_is_behind_it(
    backend: Backend,
) -> None:
    bus = await backend.bus()
    await bus.declare({"ordered": [ASSIGNED, CREATED]})
    round_ = [event(ASSIGNED if n % 2 else CREATED, key=f"task-{n % 3}") for n in range(30)]
    refused = round_[10]
    ordered = Recorder(refusals=1, only={refused.event_id})
    await bus.subscribe("ordered", [ASSIGNED, CREATED], ordered)

    outcomes = await bus.publish_batch(round_)
    if isinstance(bus, InProcessBus):
        # The consumer's share of the relay's round comes as one batch; it stopped at the
        # refused message, so that one failed and the rest were not handed over: the relay
        # keeps them all for its next round.
        assert ordered.batches == [30]
        assert outcomes[:10] == [None] * 10
        assert isinstance(outcomes[10], DeliveryFailed)
        assert all(isinstance(o, NotHandedOver) for o in outcomes[11:])
        assert await bus.publish_batch(round_[10:]) == [None] * 20  # the relay's next round
    else:
        assert outcomes == [None] * 30  # the broker took them all
    await wait_until(lambda: len(ordered.handled) >= len(round_), "every message handled")
    # Each once, and each key's in publish order. Not the round's order across keys: a
    # publisher sends different keys side by side (publish_in_key_order), so a broker may
    # queue task-0's next message ahead of task-1's earlier one.
    assert sorted(m.event_id for m in ordered.handled) == sorted(m.event_id for m in round_)
    for key in ("task-0", "task-1", "task-2"):
        assert [m for m in ordered.handled if m.key == key] == [m for m in round_ if m.key == key]
    assert [len(ordered.attempts_of(m)) for m in round_] == [1] * 10 + [2] + [1] * 19


@pytest.mark.parametrize("backend", REMOTE, indirect=True)
async def test_publish_fails_fast_while_the_broker_is_away_and_recovers(backend: Backend) -> None:
    with TcpProxy("127.0.0.1", backend.broker_port) as proxy:
        bus = backend.new_bus(via_port=proxy.port)
        await bus.connect()
        await bus.declare({"proxied": [ASSIGNED]})
        proxied = Recorder()
        await bus.subscribe("proxied", [ASSIGNED], proxied)
        before = event(key="task-1")
        await bus.publish(before)
        await wait_until(lambda: proxied.handled == [before], "delivery through the proxy")

        proxy.cut()
        during = event(key="task-2")
        started = time.monotonic()
        with pytest.raises(BusUnavailable):
            await bus.publish(during)
        assert time.monotonic() - started <= PUBLISH_TIMEOUT + SLACK

        proxy.restore()
        await publish_eventually(bus, during)  # the same bus object: it reconnected by itself
        after = event(key="task-3")
        await bus.publish(after)
        await wait_until(lambda: after in proxied.handled, "delivery after the broker came back")
        assert during in proxied.handled
        assert proxied.handled[0] == before
        await bus.close()  # while the proxy still stands


@pytest.mark.parametrize("backend", REMOTE, indirect=True)
async def test_connect_fails_fast_without_a_broker(backend: Backend) -> None:
    with TcpProxy("127.0.0.1", backend.broker_port) as proxy:
        proxy.cut()  # its port is known and nothing listens on it
        bus = backend.new_bus(via_port=proxy.port)
        started = time.monotonic()
        with pytest.raises(BusUnavailable):
            await bus.connect()
        assert time.monotonic() - started <= PUBLISH_TIMEOUT + SLACK
        with pytest.raises(BusUnavailable):
            await bus.publish(event())


@pytest.mark.parametrize("backend", BROKERS, indirect=True)
async def test_declaring_more_event_types_keeps_the_consumers_place(backend: Backend) -> None:
    first = await backend.bus()
    await first.declare({"grow": [ASSIGNED]})
    before = Recorder()
    await first.subscribe("grow", [ASSIGNED], before)
    handled = event(ASSIGNED)
    await first.publish(handled)
    await wait_until(lambda: before.handled == [handled], "handled by the first version")
    await first.close()

    upgraded = await backend.bus()  # the next release consumes one more type
    await upgraded.declare({"grow": [ASSIGNED, CREATED]})
    created, assigned = event(CREATED, key="task-2"), event(ASSIGNED, key="task-3")
    await upgraded.publish(created)
    await upgraded.publish(assigned)
    after = Recorder()
    await upgraded.subscribe("grow", [ASSIGNED, CREATED], after)
    await wait_until(lambda: assigned in after.handled, "both types reach the upgraded consumer")
    assert after.handled == [created, assigned]  # and what was acknowledged stays acknowledged


@pytest.mark.parametrize("backend", REMOTE, indirect=True)
async def test_the_backlog_counts_what_waits_for_a_consumer_until_it_is_handled(backend: Backend) -> None:
    publisher = await backend.bus()
    await publisher.declare({"behind": [ASSIGNED]})
    for key in ("task-1", "task-2", "task-3"):
        await publisher.publish(event(key=key))
    assert await publisher.backlog("behind") == 3

    consumer = await backend.bus()
    behind = Recorder()
    await consumer.subscribe("behind", [ASSIGNED], behind)
    await wait_until(lambda: len(behind.handled) == 3, "the consumer catches up")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while (left := await publisher.backlog("behind")) != 0:  # acknowledgements settle a moment later
        if loop.time() > deadline:
            pytest.fail(f"the backlog stayed at {left} after every message was handled")
        await asyncio.sleep(0.05)


async def test_the_in_process_bus_never_holds_a_backlog() -> None:
    bus = InProcessBus()
    recorder = Recorder()
    await bus.subscribe("now", [ASSIGNED], recorder)
    await bus.publish(event())
    assert (len(recorder.handled), await bus.backlog("now")) == (1, 0)


@pytest.mark.parametrize("backend", REMOTE, indirect=True)
async def test_a_consumer_outlives_a_broker_that_lost_its_state(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An idle NATS consumer checks every CONSUMER_CHECK_SECONDS that the server still has it.
    monkeypatch.setattr(nats_backend, "CONSUMER_CHECK_SECONDS", 0.3)
    bus = await backend.bus()
    await bus.declare({"amnesia": [ASSIGNED]})
    amnesia = Recorder()
    await bus.subscribe("amnesia", [ASSIGNED], amnesia)
    first = event()
    await bus.publish(first)
    await wait_until(lambda: amnesia.handled == [first], "delivery before")

    await backend.wipe()  # a broker restarted without its data

    # Until the consumer has made its queue again, RabbitMQ routes a message nowhere, so
    # publish fresh ones until one arrives: the point is that delivery resumes by itself.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while len(amnesia.handled) < 2:
        if loop.time() > deadline:
            pytest.fail("delivery did not resume after the broker lost its state")
        with contextlib.suppress(BusUnavailable):
            await bus.publish(event(key="task-2"))
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("backend", ["nats"], indirect=True)
async def test_jetstream_drops_a_republished_event_id(backend: Backend) -> None:
    bus = await backend.bus()
    await bus.declare({"dedup": [ASSIGNED]})
    dedup = Recorder()
    await bus.subscribe("dedup", [ASSIGNED], dedup)
    message, sentinel = event(), event()
    await bus.publish(message)
    await bus.publish(message)  # a relay that crashed before marking it published
    await bus.publish(sentinel)
    await wait_until(lambda: sentinel in dedup.handled, "the message after the duplicate")
    assert dedup.handled == [message, sentinel]


def test_names_derive_from_the_namespace() -> None:
    assert stream_name("tessera") == "TESSERA_EVENTS"
    assert stream_name("tessera.dev-1") == "TESSERA_DEV_1_EVENTS"
    assert subject_of("tessera", ASSIGNED) == "tessera.events.tasks.TaskAssigned.v1"
    assert durable_name("tessera.dev", "notifications") == "tessera_dev_notifications"
    assert exchange_name("tessera") == "tessera.events"
    assert queue_name("tessera", "notifications") == "tessera.notifications"
    with pytest.raises(ValueError, match="subject"):
        NatsBus(msgspec.structs.replace(EventSettings(), namespace="has space"))
