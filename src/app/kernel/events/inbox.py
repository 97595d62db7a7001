"""The idempotent inbox: a consumer's effects happen once, however often an event arrives.

The bus delivers at least once. :class:`EventConsumer` records each event id in the
``inbox`` table of the consuming module's database in the same transaction as the
handler's effect: a redelivered event finds its id there and is acknowledged without
running the handler again; a handler that raises rolls both back, and the event comes
again. Entries older than the retention are pruned: a broker redelivers within minutes,
not weeks.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, insert, select

from app.kernel.clock import utcnow
from app.kernel.context import CallContext, call_context, new_correlation_id
from app.kernel.events.bus import EventMessage
from app.kernel.events.tables import inbox
from app.kernel.faults import crash_point
from app.kernel.telemetry.metrics import EVENT_HANDLING_DELAY, INBOX_EVENTS
from app.kernel.telemetry.tracing import consumer_span
from contracts import IntegrationEvent

if TYPE_CHECKING:
    from app.kernel.unit_of_work import UnitOfWork, UnitsOfWork

__all__ = ("EventConsumer", "Subscription")

log = logging.getLogger("tessera.events")


class Subscription(msgspec.Struct, frozen=True):
    """One event type a consumer takes, and the handler that applies it in a unit of work."""

    event_class: type[IntegrationEvent]
    handler: Callable[[Any, Any], Awaitable[None]]  # (event, the inbox's unit of work)


class EventConsumer:
    """Delivers events to one module's handlers, each at most once in effect."""

    __slots__ = ("_decoders", "_subscriptions", "_units", "module")

    def __init__(
        self, *, module: str, units: UnitsOfWork[UnitOfWork], subscriptions: Mapping[str, Subscription]
    ) -> None:
        self.module = module
        self._units = units
        self._subscriptions = dict(subscriptions)
        self._decoders = {tag: msgspec.json.Decoder(s.event_class) for tag, s in self._subscriptions.items()}

    @property
    def event_types(self) -> list[str]:
        return sorted(self._subscriptions)

    async def deliver(self, message: EventMessage) -> None:
        """Apply one message; returning means its effect is committed (or was already)."""
        subscription = self._subscriptions.get(message.event_type)
        if subscription is None:
            return  # not ours: nothing to do, nothing to redeliver
        event = self._decoders[message.event_type].decode(message.payload)
        context = CallContext(correlation_id=message.correlation_id or new_correlation_id())
        trace = message.trace_headers()  # the writer's trace goes on: a child of the publish span
        with call_context(context), consumer_span(message.event_type, message.event_id, self.module, trace):
            async with self._units.write() as unit:
                seen = await unit.connection.execute(
                    select(inbox.c.event_id).where(inbox.c.event_id == uuid.UUID(message.event_id))
                )
                if seen.first() is not None:
                    log.info("%s: %s %s already handled", self.module, message.event_type, message.event_id)
                    INBOX_EVENTS.labels(self.module, message.event_type, "duplicate").inc()
                    return
                await unit.connection.execute(
                    insert(inbox).values(
                        event_id=uuid.UUID(message.event_id),
                        event_type=message.event_type,
                        source=message.source,
                        handled_at=utcnow(),
                    )
                )
                await subscription.handler(event, unit)  # its effect commits with the inbox row
        crash_point("inbox.after_commit")
        INBOX_EVENTS.labels(self.module, message.event_type, "handled").inc()
        delay = (utcnow() - event.occurred_at).total_seconds()
        EVENT_HANDLING_DELAY.labels(self.module).observe(max(0.0, delay))

    async def prune(self, retention: timedelta, *, now: datetime | None = None) -> int:
        """Forget events handled longer than ``retention`` ago; how many there were."""
        cutoff = (now or utcnow()) - retention
        async with self._units.write() as unit:
            handled = await unit.connection.execute(delete(inbox).where(inbox.c.handled_at < cutoff))
        return int(handled.rowcount or 0)
