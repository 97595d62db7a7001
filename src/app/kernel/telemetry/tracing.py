"""Traces: OpenTelemetry, configured by the standard ``OTEL_*`` environment variables alone.

Tracing is on exactly when ``OTEL_TRACES_EXPORTER`` names an exporter other than ``none``
(``otlp``, sent over OTLP/HTTP protobuf to ``OTEL_EXPORTER_OTLP_ENDPOINT``; ``console``).
Then each process installs the SDK's tracer provider (service name ``OTEL_SERVICE_NAME``,
default ``tessera``, plus ``-<group>`` in a split; the sampler from ``OTEL_TRACES_SAMPLER``),
Litestar's ``OpenTelemetryPlugin`` records a server span per request, and the httpx and
SQLAlchemy instrumentations record remote calls and queries. Unset, nothing is installed:
the API's no-op tracer costs a function call.

Either way, trace context travels as W3C ``traceparent``/``tracestate`` through
OpenTelemetry's propagators: into remote calls and proxied requests, into each outbox row,
onto each broker message, and back out in the consumer, whose ``process`` span is a child of
the relay's ``publish`` span, itself a child of the request that wrote the event — one trace
from the click to the notification.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

if TYPE_CHECKING:
    from litestar.types import Message, Scope
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from sqlalchemy import Engine

from app.kernel.config import ConfigError

__all__ = (
    "configure_tracing",
    "consumer_span",
    "continue_incoming_trace",
    "continue_trace",
    "name_by_route",
    "current_trace_headers",
    "producer_span",
    "tracing_provider",
    "tracer",
    "trace_queries",
    "tracing_enabled",
)

EXPORTER_ENV = "OTEL_TRACES_EXPORTER"
_EXPORTERS = ("otlp", "console")

tracer = trace.get_tracer("tessera")
_installed: TracerProvider | None = None  # the SDK's, once installed in this process
_trace_queries = False  # a span per SQL query (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=sqlalchemy: not)


def tracing_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return any(name not in ("", "none") for name in _exporter_names(environ))


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    return [name.strip().lower() for name in environ.get(EXPORTER_ENV, "").split(",")]


def trace_queries(engine: Engine) -> None:
    """A span per query on ``engine`` (the SQLAlchemy instrumentation's ``EngineTracer``), when tracing.

    Attached per engine rather than by ``SQLAlchemyInstrumentor``, which also wraps
    ``Engine.connect`` with a span of its own: every unit of work checks a connection out,
    and those spans doubled the cost of a traced GET's queries (bench/results/telemetry.md).
    The instrumentation declares SQLAlchemy < 2.1; 2.1's engine events are unchanged
    (tests/e2e/test_tracing.py sees the spans).
    """
    if _installed is None or not _trace_queries:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.instrumentation.sqlalchemy.version import __version__ as version
    from opentelemetry.metrics import get_meter

    name = "opentelemetry.instrumentation.sqlalchemy"
    usage = get_meter(name, version).create_up_down_counter("db.client.connections.usage", unit="connections")
    EngineTracer(trace.get_tracer(name, version, _installed), engine, usage)  # type: ignore[no-untyped-call]


def tracing_provider() -> TracerProvider | None:
    """The SDK's tracer provider, once :func:`configure_tracing` installed it in this process."""
    return _installed


def configure_tracing(group: str | None) -> TracerProvider | None:
    """Install the SDK (once per process) when ``OTEL_TRACES_EXPORTER`` asks; its provider, or None."""
    global _installed
    if _installed is not None or not tracing_enabled():
        return _installed
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or "tessera"
    resource = Resource.create(
        {SERVICE_NAME: f"{name}-{group}" if group else name, "tessera.group": group or "monolith"}
    )
    provider = TracerProvider(resource=resource)  # the sampler: OTEL_TRACES_SAMPLER(_ARG)
    for exporter in _exporters():
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    disabled = _disabled_instrumentations()
    if "httpx" not in disabled:
        HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    global _trace_queries
    _trace_queries = "sqlalchemy" not in disabled
    _installed = provider
    return provider


def _disabled_instrumentations() -> set[str]:
    """``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (OpenTelemetry's own variable): e.g. ``sqlalchemy``,
    whose span per query is most of tracing's cost (bench/results/telemetry.md)."""
    names = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip().lower() for name in names.split(",") if name.strip()}


def _exporters() -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _exporter_names(os.environ):
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Tessera exports http/protobuf")
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        else:
            raise ConfigError(f"{EXPORTER_ENV}={name!r}: not one of {', '.join(_EXPORTERS)}, none")
    return exporters


def current_trace_headers() -> dict[str, str]:
    """The W3C headers of the span under way (``traceparent``, ``tracestate`` when set); {} without one."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


async def name_by_route(message: Message, scope: Scope) -> None:
    """A Litestar ``before_send`` hook: the request's span is named by its route template.

    The instrumentation names it when the request arrives, before routing, after the raw
    path (``GET /api/v1/tasks/0b1e…``): ids in span names. Semantic conventions ask for
    ``{method} {http.route}``.
    """
    if message["type"] != "http.response.start" or "path_template" not in scope:
        return
    span = trace.get_current_span()
    if span.is_recording():
        route = scope["path_template"]
        span.update_name(f"{scope.get('method', 'GET')} {route}")  # before_send: HTTP only
        span.set_attribute("http.route", route)


@contextmanager
def continue_incoming_trace(headers: Mapping[str, str]) -> Iterator[None]:
    """A request's caller's trace context, current for the request — where no span is recorded.

    With tracing on, Litestar's plugin extracts it itself and records the request's SERVER
    span under it (a span already current would make that span INTERNAL): nothing to do.
    """
    if _installed is not None or not headers:
        yield
        return
    with continue_trace(headers):
        yield


@contextmanager
def continue_trace(headers: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context ``headers`` carry the current one for the block (no span of its own)."""
    token = otel_context.attach(propagate.extract(headers))
    try:
        yield
    finally:
        otel_context.detach(token)


def producer_span(
    event_type: str, event_id: str, module: str, parent: Mapping[str, str]
) -> AbstractContextManager[Span]:
    """A relay's ``publish`` span, current in its ``with`` block: a child of the work that wrote the event."""
    return _messaging_span(
        SpanKind.PRODUCER, "send", "publish", event_type, event_id, parent, {"tessera.module": module}
    )


def consumer_span(
    event_type: str, event_id: str, consumer: str, parent: Mapping[str, str]
) -> AbstractContextManager[Span]:
    """A consumer's ``process`` span, current in its ``with`` block: a child of the publish span."""
    extra = {
        "messaging.consumer.group.name": consumer,
        "tessera.event_type": event_type,
        "tessera.consumer": consumer,
    }
    return _messaging_span(SpanKind.CONSUMER, "process", "process", event_type, event_id, parent, extra)


def _messaging_span(
    kind: SpanKind,
    operation_type: str,
    operation: str,
    event_type: str,
    event_id: str,
    parent: Mapping[str, str],
    extra: Mapping[str, str],
) -> AbstractContextManager[Span]:
    """A span under the trace context ``parent`` carries, by OpenTelemetry's messaging conventions."""
    attributes = {
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation,
        "messaging.destination.name": event_type,
        "messaging.message.id": event_id,
        **extra,
    }
    span = tracer.start_span(
        f"{event_type} {operation}", context=propagate.extract(parent), kind=kind, attributes=attributes
    )
    return trace.use_span(span, end_on_exit=True)  # current for the block, ended after it
