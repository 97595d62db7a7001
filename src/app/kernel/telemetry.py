"""Structured logs: one JSON object per line, each carrying the call's correlation id."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import msgspec

from app.kernel.context import active_context

__all__ = ("JsonFormatter", "configure_logging")

_encoder = msgspec.json.Encoder(enc_hook=repr)
# The attributes every LogRecord has; anything else was passed as ``extra`` and is kept.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Libraries that log every outbound request at INFO: one line per proxied request or RPC.
_CHATTY = ("httpx", "httpcore")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (context := active_context()) is not None:
            entry["correlation_id"] = context.correlation_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


def configure_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
