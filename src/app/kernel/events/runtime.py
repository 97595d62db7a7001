"""One process's share of the event system: its bus, its modules' relays and consumers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from datetime import timedelta

from app.kernel.config import ConfigError, EventSettings
from app.kernel.events.bus import BusUnavailable, EventBus, InProcessBus
from app.kernel.events.inbox import EventConsumer
from app.kernel.events.outbox import OutboxRelay, backoff_delay, wait_for_event
from app.kernel.telemetry.metrics import BUS_CONNECTED, OUTBOX_EVENTS, OUTBOX_OLDEST_PENDING_AGE

__all__ = ("BUSES", "EventRuntime", "bus_for")

log = logging.getLogger("tessera.events")

BUSES = ("inprocess", "nats", "rabbitmq")


def bus_for(settings: EventSettings) -> EventBus:
    """The backend ``events.bus`` names; brokers' client libraries load only when chosen."""
    if settings.bus == "inprocess":
        return InProcessBus()
    if settings.bus == "nats":
        from app.kernel.events.nats import NatsBus

        return NatsBus(settings)
    if settings.bus == "rabbitmq":
        from app.kernel.events.rabbitmq import RabbitBus

        return RabbitBus(settings)
    raise ConfigError(f"events.bus: {settings.bus!r} is not one of {', '.join(BUSES)}")


class EventRuntime:
    """Connects the bus, declares every consumer, subscribes the local ones, runs the relays.

    Start-up never waits for the broker: writes go to the outboxes meanwhile, and the
    relays start once the bus is connected and every consumer is declared and subscribed
    (so that nothing is published before someone is there to receive it). Pruning needs
    no broker: every ``prune_interval_seconds`` each local outbox and inbox forgets what
    is older than ``retention_hours``, whether its module publishes, consumes, or both.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        settings: EventSettings,
        relays: Sequence[OutboxRelay] = (),
        consumers: Sequence[EventConsumer] = (),
        declared: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.bus = bus
        self.relays = tuple(relays)
        self.consumers = tuple(consumers)
        self._settings = settings
        self._declared = dict(declared or {c.module: c.event_types for c in consumers})
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._subscribed = False  # connected once, every consumer declared and subscribed

    @property
    def idle(self) -> bool:
        return not self.relays and not self.consumers

    async def start(self) -> None:
        if self.idle or self._tasks:
            return
        if not self._settings.namespace and not isinstance(self.bus, InProcessBus):
            raise ConfigError(
                "events.namespace: not set; `tessera serve` derives it from the deployment id "
                "that `tessera db upgrade` records, or set it yourself"
            )
        self._stopping = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._run(), name="tessera-events"))
        self._tasks.append(asyncio.create_task(self._prune_forever(), name="tessera-events-pruning"))
        self._tasks.append(asyncio.create_task(self._count_forever(), name="tessera-events-status"))

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Let each relay finish its round, stop connecting, and close the bus."""
        if not self._tasks:
            return
        self._stopping.set()
        for relay in self.relays:
            relay.stop()
        supervisor, *rounds = self._tasks  # the pruner and the relays finish their round
        supervisor.cancel()  # still connecting, or done
        await asyncio.gather(supervisor, return_exceptions=True)
        if rounds:
            _, late = await asyncio.wait(rounds, timeout=grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*rounds, return_exceptions=True)
        self._tasks.clear()
        self._subscribed = False
        BUS_CONNECTED.labels(self.bus.name).set(0)
        try:
            await asyncio.wait_for(self.bus.close(), timeout=grace_seconds)
        except Exception:
            log.exception("closing the %s bus failed", self.bus.name)

    async def _run(self) -> None:
        await self._connect()
        self._tasks += [asyncio.create_task(r.run(), name=f"tessera-relay-{r.module}") for r in self.relays]
        log.info(
            "events: %s bus; relaying %s; consuming for %s",
            self.bus.name,
            [r.module for r in self.relays] or "nothing",
            [c.module for c in self.consumers] or "nobody",
        )

    async def _count_forever(self) -> None:
        """Every ``status_interval_seconds``: the outboxes' backlog and the bus's connection, as gauges."""
        while not self._stopping.is_set():
            BUS_CONNECTED.labels(self.bus.name).set(1 if self._subscribed and self.bus.connected else 0)
            for relay in self.relays:
                try:
                    status = await relay.outbox.status()
                except Exception as exc:
                    log.warning("%s: counting the outbox failed: %r", relay.module, exc)
                    continue
                OUTBOX_EVENTS.labels(relay.module, "pending").set(status.pending)
                OUTBOX_EVENTS.labels(relay.module, "failed").set(status.failed)
                OUTBOX_OLDEST_PENDING_AGE.labels(relay.module).set(status.lag_seconds)
            await wait_for_event(self._stopping, self._settings.status_interval_seconds)

    async def _prune_forever(self) -> None:
        retention = timedelta(hours=self._settings.retention_hours)
        while not self._stopping.is_set():
            for relay in self.relays:
                await self._prune(relay.module, "published events", relay.outbox.prune(retention))
            for consumer in self.consumers:
                await self._prune(consumer.module, "inbox entries", consumer.prune(retention))
            await wait_for_event(self._stopping, self._settings.prune_interval_seconds)

    @staticmethod
    async def _prune(module: str, what: str, pruning: Awaitable[int]) -> None:
        try:
            pruned = await pruning
        except Exception:
            log.exception("%s: pruning %s failed", module, what)
            return
        if pruned:
            log.info("%s: pruned %d %s", module, pruned, what)

    async def _connect(self) -> None:
        """Connect, declare every consumer and subscribe the local ones; retry until it all worked."""
        attempt = 0
        while True:
            try:
                await self.bus.connect()
                await self.bus.declare(self._declared)
                for consumer in self.consumers:
                    await self.bus.subscribe(consumer.module, consumer.event_types, consumer.deliver_all)
                self._subscribed = True
                return
            except BusUnavailable as exc:
                await self.bus.close()  # start over from nothing: no half-made subscriptions
                attempt += 1
                delay = backoff_delay(
                    attempt,
                    initial=self._settings.backoff_initial_seconds,
                    maximum=self._settings.backoff_max_seconds,
                )
                log.warning("events: %s bus unavailable (%s); retrying in %.2fs", self.bus.name, exc, delay)
                await asyncio.sleep(delay)
