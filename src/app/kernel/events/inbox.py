"""The idempotent inbox: a consumer's effects happen once, however often an event arrives.

The bus delivers at least once, in batches. :class:`EventConsumer` records each event id
in the ``inbox`` table of the consuming module's database in the same transaction as the
handlers' effects (one transaction per batch): a redelivered event finds its id there and
is acknowledged without running the handler again; a handler that raises rolls both back,
and the event comes again. Entries older than the retention are pruned: a broker
redelivers within minutes, not weeks.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from sqlalchemy import delete, insert, select

from app.kernel.clock import utcnow
from app.kernel.context import CallContext, call_context, new_correlation_id
from app.kernel.events.bus import EventMessage, PartlyHandled
from app.kernel.events.tables import inbox
from app.kernel.faults import crash_point
from app.kernel.telemetry.metrics import EVENT_HANDLING_DELAY, INBOX_EVENTS
from app.kernel.telemetry.tracing import consumer_span, continue_trace, tracing_provider
from contracts import IntegrationEvent

if TYPE_CHECKING:
    from app.kernel.unit_of_work import UnitOfWork, UnitsOfWork

__all__ = ("EventConsumer", "Subscription")

log = logging.getLogger("tessera.events")


class Subscription(msgspec.Struct, frozen=True):
    """One event type a consumer takes, and the handler that applies it in a unit of work."""

    event_class: type[IntegrationEvent]
    # (a run of consecutive events of the type, in order; the inbox's unit of work)
    handler: Callable[[Sequence[Any], Any], Awaitable[None]]


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
        await self._apply([message])

    async def deliver_all(self, messages: Sequence[EventMessage]) -> None:
        """Apply messages in order, all in one transaction: the bus's :data:`Handler`.

        If that transaction fails, they are applied one at a time, so that the messages
        before the one that fails still take effect; it raises :class:`PartlyHandled`
        saying how many did.
        """
        if len(messages) <= 1:
            await self._apply(messages)
            return
        try:
            await self._apply(messages)
        except Exception:
            for handled, message in enumerate(messages):
                try:
                    await self._apply([message])
                except Exception as exc:
                    raise PartlyHandled(handled, exc) from exc

    async def _apply(self, messages: Sequence[EventMessage]) -> None:
        ours = [
            (message, subscription)
            for message in messages
            if (subscription := self._subscriptions.get(message.event_type)) is not None
        ]  # the rest: not ours, nothing to do, nothing to redeliver
        if not ours:
            return
        applied: list[tuple[EventMessage, IntegrationEvent]] = []
        duplicates: list[EventMessage] = []
        async with self._units.write() as unit:
            ids = [uuid.UUID(message.event_id) for message, _ in ours]
            seen = set(
                (await unit.connection.execute(select(inbox.c.event_id).where(inbox.c.event_id.in_(ids))))
                .scalars()
                .all()
            )
            fresh: list[tuple[EventMessage, Subscription, uuid.UUID]] = []
            for (message, subscription), event_id in zip(ours, ids, strict=True):
                if event_id in seen:
                    duplicates.append(message)
                    continue
                seen.add(event_id)  # twice in one batch (a broker's redelivery): once in effect
                fresh.append((message, subscription, event_id))
            if fresh:
                now = utcnow()
                await unit.connection.execute(
                    insert(inbox),
                    [
                        {
                            "event_id": event_id,
                            "event_type": message.event_type,
                            "source": message.source,
                            "handled_at": now,
                        }
                        for message, _, event_id in fresh
                    ],
                )
            for run in _runs(fresh):
                applied += await self._handle(run, unit)  # its effects commit with the inbox rows
        crash_point("inbox.after_commit")
        for message in duplicates:
            log.info("%s: %s %s already handled", self.module, message.event_type, message.event_id)
            INBOX_EVENTS.labels(self.module, message.event_type, "duplicate").inc()
        # Counted per event type, each label set looked up once per batch, not once per event.
        for event_type, count in Counter(message.event_type for message, _ in applied).items():
            INBOX_EVENTS.labels(self.module, event_type, "handled").inc(count)
        now = utcnow()
        delays = EVENT_HANDLING_DELAY.labels(self.module)
        for _, event in applied:
            delays.observe(max(0.0, (now - event.occurred_at).total_seconds()))

    async def _handle(
        self, run: list[tuple[EventMessage, Subscription, uuid.UUID]], unit: UnitOfWork
    ) -> list[tuple[EventMessage, IntegrationEvent]]:
        """One handler call for a run: in the first event's call context, each event's span."""
        first, subscription, _ = run[0]
        events = [
            (message, self._decoders[message.event_type].decode(message.payload)) for message, _, _ in run
        ]
        context = CallContext(correlation_id=first.correlation_id or new_correlation_id())
        with call_context(context), contextlib.ExitStack() as spans:
            if tracing_provider() is None:  # no span is recorded: logs still name the writer's trace
                spans.enter_context(continue_trace(first.trace_headers()))
            else:  # the writer's trace goes on: each event's span a child of its publish span
                module = self.module
                for m, _ in events:
                    spans.enter_context(consumer_span(m.event_type, m.event_id, module, m.trace_headers()))
            await subscription.handler([event for _, event in events], unit)
        return events

    async def prune(self, retention: timedelta, *, now: datetime | None = None) -> int:
        """Forget events handled longer than ``retention`` ago; how many there were."""
        cutoff = (now or utcnow()) - retention
        async with self._units.write() as unit:
            handled = await unit.connection.execute(delete(inbox).where(inbox.c.handled_at < cutoff))
        return int(handled.rowcount or 0)


def _runs(
    fresh: list[tuple[EventMessage, Subscription, uuid.UUID]],
) -> list[list[tuple[EventMessage, Subscription, uuid.UUID]]]:
    """Consecutive events for one handler, together: it applies each run in one call.

    One type's events, or those of every type a module maps to the same method.
    """
    return [list(run) for _, run in itertools.groupby(fresh, key=lambda entry: id(entry[1].handler))]
