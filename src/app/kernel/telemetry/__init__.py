"""Logs, metrics and traces: what an operator sees of a running Tessera.

- ``logs``: one structured line per log record (JSON, or plain text in development),
  each with the call's correlation and trace ids;
- ``metrics``: the Prometheus metrics every part records, and their exposition
  (one process, or every worker of a ``--workers N`` server through prometheus-client's
  multiprocess mode);
- ``http``: the ASGI middleware that measures and logs every request, and ``/metrics``;
- ``tracing``: OpenTelemetry, configured by ``OTEL_*``, and the W3C trace context that
  travels through remote calls and the event pipeline.
"""

from app.kernel.telemetry.logs import JsonFormatter, TextFormatter, configure_logging

__all__ = ("JsonFormatter", "TextFormatter", "configure_logging")
