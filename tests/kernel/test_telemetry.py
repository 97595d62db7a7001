"""Log lines: JSON (or plain text), with the call's correlation and trace ids and every extra field."""

from __future__ import annotations

import json
import logging

from app.kernel.context import CallContext, call_context
from app.kernel.telemetry import JsonFormatter, TextFormatter, configure_logging
from app.kernel.telemetry.tracing import continue_trace


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


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_every_line_carries_the_trace_of_the_call() -> None:
    record = logging.LogRecord("tessera.test", logging.INFO, __file__, 1, "hello", (), None)
    with call_context(CallContext(correlation_id="corr-8")), continue_trace({"traceparent": TRACEPARENT}):
        line = _line(record)
    assert (line["trace_id"], line["span_id"]) == ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


def test_no_field_carries_terminal_colour_codes() -> None:
    # uvicorn passes its message again, coloured, as ``color_message``.
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None
    )
    record.__dict__["color_message"] = "Started server process [\x1b[36m%d\x1b[0m]"
    assert "\x1b" not in JsonFormatter().format(record)
    assert "\x1b" not in TextFormatter().format(record)


def test_a_text_line_reads_as_time_level_logger_message_then_fields() -> None:
    record = logging.LogRecord("tessera.requests", logging.INFO, __file__, 1, "GET %s", ("/x",), None)
    record.__dict__.update({"status": 200, "user_id": None, "route": "/a b"})
    with call_context(CallContext(correlation_id="corr-9")), continue_trace({"traceparent": TRACEPARENT}):
        line = TextFormatter().format(record)
    head, _, fields = line.partition("  ")
    assert head.split()[1:] == ["INFO", "tessera.requests:", "GET", "/x"]
    assert fields.split() == [
        "correlation_id=corr-9",
        "trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id=00f067aa0ba902b7",
        "status=200",
        'route="/a',  # a value with a space is quoted
        'b"',
    ]
