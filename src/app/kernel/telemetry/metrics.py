"""Every Prometheus metric Tessera records, and their exposition at ``/metrics``.

One process (``--workers 1``, the tests): prometheus-client's default registry, with its
process and platform collectors. Several workers: ``tessera serve`` points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory before the workers start, each worker
writes its samples there, and whichever worker answers a scrape reads them all
(prometheus-client's multiprocess mode); process metrics then come per worker, labelled
with its ``pid``. Labels carry names from the code (route templates, contract methods,
module names, error codes), never anything a user typed.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

__all__ = (
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "BUS_CONNECTED",
    "CONTRACT_CALLS",
    "EXPOSITION_MEDIA_TYPE",
    "DB_POOL_IN_USE",
    "DB_POOL_SIZE",
    "DB_POOL_TIMEOUTS",
    "EVENT_HANDLING_DELAY",
    "HTTP_REQUESTS",
    "HTTP_REQUESTS_IN_PROGRESS",
    "HTTP_REQUEST_DURATION",
    "INBOX_EVENTS",
    "OUTBOX_EVENTS",
    "OUTBOX_OLDEST_PENDING_AGE",
    "PROJECTION_EVENTS",
    "PROJECTION_LAG",
    "RELAY_BATCH_DURATION",
    "RELAY_PUBLISHED",
    "RPC_CALLS",
    "RPC_CALL_DURATION",
    "RPC_ERRORS",
    "contract_calls_of_request",
    "count_contract_call",
    "SAGAS_ENDED",
    "SAGAS_OPEN",
    "SAGAS_STARTED",
    "SAGAS_STUCK",
    "SAGA_STEP_DURATION",
    "breaker_changed",
    "watch_breaker",
    "exposition",
    "multiprocess_directory",
    "prepare_multiprocess",
    "process_ended",
    "serve_on_port",
)

log = logging.getLogger("tessera.metrics")

# The classic text format (0.0.4), which every Prometheus 2 and 3 reads; Litestar adds the charset.
EXPOSITION_MEDIA_TYPE = "text/plain; version=0.0.4"

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds; from a cached read (~1 ms) to a proxied call that waits out its budget (15 s).
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
# Seconds from an event's commit to its handling: milliseconds in-process, minutes behind an outage.
_DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

# RED, per route template ("unmatched" for a path no route serves).
HTTP_REQUESTS = Counter(
    "tessera_http_requests",
    "HTTP requests answered, by method, route template and status class (2xx, 4xx, 5xx, ...).",
    ("method", "route", "status_class"),
)
HTTP_REQUEST_DURATION = Histogram(
    "tessera_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ("method", "route"),
    buckets=_LATENCY_BUCKETS,
)
HTTP_REQUESTS_IN_PROGRESS = Gauge(
    "tessera_http_requests_in_progress",
    "Requests being answered now.",
    multiprocess_mode="livesum",
)

# Calls across a module boundary, wherever the callee runs, by the public route whose request
# made them: what `tessera extract --from` turns into calls per request (a route, "-" for none).
CONTRACT_CALLS = Counter(
    "tessera_contract_calls",
    "Calls of a module's contract by another module or the web pages, by the route of the request "
    "that made them (- for none: event handlers, background work) and the contract method called.",
    ("route", "call"),
)
_request_calls: ContextVar[dict[str, int] | None] = ContextVar("tessera_request_calls", default=None)


def count_contract_call(call: str) -> None:
    """One call of ``call`` (``contract.method``), held for the request under way if there is one."""
    calls = _request_calls.get()
    if calls is None:
        CONTRACT_CALLS.labels(NO_ROUTE, call).inc()
    else:
        calls[call] = calls.get(call, 0) + 1


@contextmanager
def contract_calls_of_request() -> Iterator[dict[str, int]]:
    """Hold the request's contract calls (the caller counts them under its route when it is known)."""
    calls: dict[str, int] = {}
    token = _request_calls.set(calls)
    try:
        yield calls
    finally:
        _request_calls.reset(token)


NO_ROUTE = "-"

# Remote calls: one contract method of another group, over HTTP.
RPC_CALLS = Counter(
    "tessera_rpc_calls",
    "Remote contract calls made (a call's retries count once here; see stamina_retries_total).",
    ("contract", "method"),
)
RPC_ERRORS = Counter(
    "tessera_rpc_errors",
    "Remote contract calls that ended in an error, by the contract error code the caller got.",
    ("contract", "method", "code"),
)
RPC_CALL_DURATION = Histogram(
    "tessera_rpc_call_duration_seconds",
    "Time a remote contract call took, retries included.",
    ("contract", "method"),
    buckets=_LATENCY_BUCKETS,
)
BREAKER_STATE = Gauge(
    "tessera_circuit_breaker_state",
    "Each remote group's circuit breaker: 0 closed, 1 half-open, 2 open (the worst worker's).",
    ("group",),
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS = Counter(
    "tessera_circuit_breaker_transitions",
    "Circuit breaker state changes, by remote group and the state entered.",
    ("group", "state"),
)

# The event pipeline.
OUTBOX_EVENTS = Gauge(
    "tessera_outbox_events",
    "Events in a module's outbox, by status (pending, failed), as its relay last counted them.",
    ("module", "status"),
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_PENDING_AGE = Gauge(
    "tessera_outbox_oldest_pending_age_seconds",
    "Age of a module's oldest pending event (0 when none is pending).",
    ("module",),
    multiprocess_mode="mostrecent",
)
RELAY_PUBLISHED = Counter(
    "tessera_relay_published_events",
    "Events a module's relay published to the bus.",
    ("module",),
)
RELAY_BATCH_DURATION = Histogram(
    "tessera_relay_batch_duration_seconds",
    "Time a relay round took to claim, publish and settle a batch of events.",
    ("module",),
    buckets=_LATENCY_BUCKETS,
)
INBOX_EVENTS = Counter(
    "tessera_inbox_events",
    "Events delivered to a consuming module: handled, or skipped as a duplicate already handled.",
    ("consumer", "event_type", "outcome"),
)
EVENT_HANDLING_DELAY = Histogram(
    "tessera_event_handling_delay_seconds",
    "Time from an event's commit in its publisher to its handling by a consumer (consumer lag).",
    ("consumer",),
    buckets=_DELAY_BUCKETS,
)
BUS_CONNECTED = Gauge(
    "tessera_bus_connected",
    "1 while this process's event bus is connected and its consumers subscribed, else 0.",
    ("bus",),
    multiprocess_mode="livemin",
)
PROJECTION_LAG = Gauge(
    "tessera_projection_lag_events",
    "Events in a module's event store that a projection has not applied yet, as last seen.",
    ("module", "projection"),
    multiprocess_mode="mostrecent",
)
PROJECTION_EVENTS = Counter(
    "tessera_projection_events",
    "Events a projection has read from its module's event store (a rebuild's under NAME__rebuild).",
    ("module", "projection"),
)

# Sagas (their orchestrating module's).
SAGAS_STARTED = Counter("tessera_sagas_started", "Saga runs started, by saga.", ("saga",))
SAGAS_ENDED = Counter(
    "tessera_sagas_ended",
    "Saga runs that ended, by saga and how (completed, compensated).",
    ("saga", "state"),
)
SAGAS_STUCK = Counter(
    "tessera_sagas_stuck",
    "Times a saga run was flagged stuck: a step failed its bound of attempts and waits for an operator.",
    ("saga",),
)
SAGAS_OPEN = Gauge(
    "tessera_sagas_open",
    "Unfinished saga runs by saga and state (running, compensating, stuck), as last counted.",
    ("saga", "state"),
    multiprocess_mode="mostrecent",
)
SAGA_STEP_DURATION = Histogram(
    "tessera_saga_step_duration_seconds",
    "Time a saga step's action (forward) or compensation (backward) took, by how it ended.",
    ("saga", "step", "direction", "outcome"),
    buckets=_LATENCY_BUCKETS,
)

# Databases.
DB_POOL_IN_USE = Gauge(
    "tessera_db_pool_connections_in_use",
    "A module's database connections checked out of its pool now.",
    ("module",),
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "tessera_db_pool_size",
    "The most connections a module's pool holds (it never overflows), summed over processes.",
    ("module",),
    multiprocess_mode="livesum",
)
DB_POOL_TIMEOUTS = Counter(
    "tessera_db_pool_timeouts",
    "Units of work that got no connection within database.pool_timeout_seconds (answered 503).",
    ("module",),
)


def multiprocess_directory() -> Path | None:
    location = os.environ.get(MULTIPROC_ENV)
    return Path(location) if location else None


def prepare_multiprocess(directory: Path) -> None:
    """Called by ``tessera serve`` before its workers start: an empty directory, in the environment.

    The workers inherit the variable, so prometheus-client writes their samples there.
    """
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(directory)


def process_ended() -> None:
    """A worker stops: its live gauges (requests in progress, pools, breakers) leave the sums."""
    if multiprocess_directory() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """The metrics of this process, or of every worker, in the Prometheus text format."""
    return generate_latest(_registry())


def serve_on_port(port: int, host: str) -> None:
    """The metrics on a port of their own, from a thread of this process (``tessera serve``'s)."""
    start_http_server(port, addr=host, registry=_registry())


def _registry() -> CollectorRegistry:
    directory = multiprocess_directory()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    registry.register(_WorkerProcesses(directory))
    return registry


class _WorkerProcesses(Collector):
    """``process_*`` metrics (CPU, memory, open files) of every live worker, labelled with its pid."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Iterator[Metric]:
        merged: dict[str, Metric] = {}
        for pid in self._pids():
            for metric in ProcessCollector(pid=functools.partial(int, pid), registry=None).collect():
                into = merged.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type, metric.unit)
                )
                for sample in metric.samples:
                    into.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from merged.values()

    def _pids(self) -> Iterable[int]:
        """Workers that wrote samples and still run (their live gauge files name them)."""
        pids = {int(path.stem.rsplit("_", 1)[1]) for path in self._directory.glob("gauge_live*_*.db")}
        return sorted(pid for pid in pids if Path(f"/proc/{pid}").exists())


_BREAKER_CODES = {"closed": 0, "half_open": 1, "open": 2}


def watch_breaker(group: str) -> Callable[[Any, str, str], None]:
    """The ``on_state_change`` hook of a remote group's breaker; its gauge starts at closed."""
    BREAKER_STATE.labels(group).set(0)
    return breaker_changed


def breaker_changed(breaker: Any, old: str, new: str) -> None:
    """A :class:`~app.kernel.resilience.CircuitBreaker` hook: its state, as a gauge and a transition."""
    BREAKER_STATE.labels(breaker.name).set(_BREAKER_CODES[str(new)])
    BREAKER_TRANSITIONS.labels(breaker.name, str(new)).inc()
    log.warning("circuit breaker %s: %s -> %s", breaker.name, old, new)
