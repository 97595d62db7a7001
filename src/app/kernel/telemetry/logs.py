"""Structured logs: one line per record, each carrying the call's correlation and trace ids.

JSON in production (one object per line, for a log pipeline); plain ``key=value`` text in
development (``server.log_format = "text"``), never with colour codes.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Literal

import msgspec
from opentelemetry import trace

from app.kernel import context  # a module reference: the context middleware imports telemetry too

__all__ = ("JsonFormatter", "TextFormatter", "configure_logging", "log_fields")

_encoder = msgspec.json.Encoder(enc_hook=repr)
# The attributes every LogRecord has; anything else was passed as ``extra`` and is kept,
# but uvicorn's ``color_message`` (the message again, with terminal colour codes).
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
}
# Libraries that log every outbound request at INFO: one line per proxied request or RPC.
_CHATTY = ("httpx", "httpcore")


def trace_ids() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the span under way (32 and 16 hex digits); {} outside any trace.

    The recording span's when tracing is on; otherwise the trace a caller passed in, if any.
    """
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    return {"trace_id": format(span.trace_id, "032x"), "span_id": format(span.span_id, "016x")}


def log_fields(record: logging.LogRecord) -> dict[str, object]:
    """What a line says besides time, level, logger and message: ids, then the record's extras.

    An extra may name the ids itself (the request log, written after its span ended).
    """
    fields: dict[str, object] = {}
    if (call := context.active_context()) is not None:
        fields["correlation_id"] = call.correlation_id
    fields.update(trace_ids())
    fields.update({k: v for k, v in vars(record).items() if k not in _STANDARD and v is not None})
    return fields


def _time(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in log_fields(record).items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``, for a person reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={_text(v)}" for k, v in log_fields(record).items())
        line = f"{_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        line = f"{line}  {fields}" if fields else line
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _text(value: object) -> str:
    text = str(value)
    return _encoder.encode(text).decode() if not text or any(c.isspace() or c == '"' for c in text) else text


def configure_logging(level: str = "info", log_format: Literal["json", "text"] = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
