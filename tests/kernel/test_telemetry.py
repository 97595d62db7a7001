"""Log lines: JSON, with the correlation id of the call and every extra field kept."""

from __future__ import annotations

import json
import logging

from app.kernel.context import CallContext, call_context
from app.kernel.telemetry import JsonFormatter, configure_logging


def _line(record: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_a_log_line_is_json_with_the_correlation_id() -> None:
    record = logging.LogRecord("tessera.test", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    with call_context(CallContext(correlation_id="corr-7")):
        line = _line(record)
    assert line["message"] == "hello world"
    assert line["correlation_id"] == "corr-7"
    assert line["level"] == "info"


def test_extra_fields_are_kept() -> None:
    record = logging.LogRecord("stamina", logging.WARNING, __file__, 1, "retry scheduled", (), None)
    record.__dict__.update({"stamina.caused_by": "ConnectError()", "stamina.retry_num": 1})
    line = _line(record)
    assert line["stamina.caused_by"] == "ConnectError()"
    assert line["stamina.retry_num"] == 1


def test_request_by_request_client_logs_are_quiet_at_info() -> None:
    root, httpx_logger = logging.getLogger(), logging.getLogger("httpx")
    saved = (root.handlers[:], root.level, httpx_logger.level)
    try:
        configure_logging("info")
        assert not httpx_logger.isEnabledFor(logging.INFO)
        assert logging.getLogger("tessera").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], _, _ = saved[0], None, None
        root.setLevel(saved[1])
        httpx_logger.setLevel(saved[2])
