"""Events between modules: transactional outbox, relays, a bus with three backends, inboxes.

A module appends events to its :class:`Outbox` in the transaction that changes its data;
an :class:`OutboxRelay` publishes them to the :class:`EventBus`; each consuming module's
:class:`EventConsumer` applies them through its inbox, once in effect.
"""

from app.kernel.events.bus import BusUnavailable, DeliveryFailed, EventBus, EventMessage, InProcessBus
from app.kernel.events.inbox import EventConsumer, Subscription
from app.kernel.events.outbox import Outbox, OutboxRelay, OutboxStatus, UndeclaredEvent
from app.kernel.events.runtime import BUSES, EventRuntime, bus_for

__all__ = (
    "BUSES",
    "BusUnavailable",
    "DeliveryFailed",
    "EventBus",
    "EventConsumer",
    "EventMessage",
    "EventRuntime",
    "InProcessBus",
    "Outbox",
    "OutboxRelay",
    "OutboxStatus",
    "Subscription",
    "UndeclaredEvent",
    "bus_for",
)
