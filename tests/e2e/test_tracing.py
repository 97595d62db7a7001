"""One trace from the click to the notification, across the four-process split over NATS.

Every process exports its spans over OTLP/HTTP to a receiver in this test (configured by
the standard OTEL_* variables alone). A POST of a task with an assignee, sent with a
traceparent of the test's own, must yield one trace: gateway → tasks → identity (the
remote call) → the outbox's publish span → the notifications consumer's ``process`` span.
A request whose caller sampled it out exports nothing anywhere.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import httpx
import pytest

from tests.e2e.cluster import split_cluster
from tests.e2e.flow import eventually, register_and_log_in
from tests.otlp import ReceivedSpan, Receiver, otlp_receiver

pytestmark = pytest.mark.slow

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # opentelemetry.proto.trace.v1.Span.SpanKind
SERVICES = {"tessera-gateway", "tessera-tasks", "tessera-identity", "tessera-notifications"}
WITHIN = 30.0


def _traceparent(trace_id: str, *, sampled: bool) -> str:
    return f"00-{trace_id}-{secrets.token_hex(8)}-{'01' if sampled else '00'}"


def _consumer_span(receiver: Receiver, trace_id: str) -> ReceivedSpan | None:
    return next(
        (
            s
            for s in receiver.spans
            if s.trace_id == trace_id and s.kind == CONSUMER and s.service == "tessera-notifications"
        ),
        None,
    )


def _whole_trace(receiver: Receiver, trace_id: str) -> dict[str, ReceivedSpan] | None:
    """The trace's spans by id, once the consumer's span, identity's server span and every
    span's parent arrived (only the gateway's server span has its parent outside: the test's).

    A process exports a span when it ends, in batches, so a parent (the publish span, ended
    after the broker's acknowledgement; identity's server span, ended after its queries)
    may arrive after its child.
    """
    trace = {s.span_id: s for s in receiver.spans if s.trace_id == trace_id}
    roots = [s for s in trace.values() if s.parent_span_id not in trace]
    whole = (
        _consumer_span(receiver, trace_id) is not None
        and any(s.service == "tessera-identity" and s.kind == SERVER for s in trace.values())
        and {s.service for s in trace.values()} >= SERVICES
        and [(s.service, s.kind) for s in roots] == [("tessera-gateway", SERVER)]
    )
    return trace if whole else None


def test_a_request_and_the_notification_it_causes_are_one_trace(tmp_path: Path) -> None:
    with otlp_receiver() as receiver:
        environment = {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms between exports: the test waits less
        }
        with split_cluster(tmp_path, environment=environment) as cluster:
            with httpx.Client(base_url=cluster.gateway, timeout=15) as http:
                _, ada = register_and_log_in(http, "Ada")
                bob_id, _ = register_and_log_in(http, "Bob")
                unsampled, sampled = secrets.token_hex(16), secrets.token_hex(16)
                for trace_id, is_sampled in ((unsampled, False), (sampled, True)):
                    created = http.post(
                        "/api/v1/tasks",
                        json={"title": f"Traced {is_sampled}", "assignee_id": bob_id},
                        headers={**ada, "traceparent": _traceparent(trace_id, sampled=is_sampled)},
                    )
                    assert created.status_code == 201, created.text
                read_trace, task_id = secrets.token_hex(16), created.json()["id"]
                read = http.get(
                    f"/api/v1/tasks/{task_id}",
                    headers={**ada, "traceparent": _traceparent(read_trace, sampled=True)},
                )
                assert read.status_code == 200
            trace = eventually(lambda: _whole_trace(receiver, sampled), within=WITHIN, what="the whole trace")
            read_span = eventually(
                lambda: next(
                    (
                        s
                        for s in receiver.spans
                        if s.trace_id == read_trace and s.kind == SERVER and s.service == "tessera-tasks"
                    ),
                    None,
                ),
                within=WITHIN,
                what="the read's server span in tasks",
            )
            unsampled_spans = [s for s in receiver.spans if s.trace_id == unsampled]
            logged = [json.loads(line) for line in cluster.log_file("tasks").read_text().splitlines()]

    consumed = _consumer_span(receiver, sampled)
    assert consumed is not None
    # The consumer's process span follows the messaging conventions and names what it handled.
    assert consumed.name == "tasks.TaskAssigned.v1 process"
    assert consumed.attributes["messaging.operation.type"] == "process"
    assert consumed.attributes["tessera.consumer"] == "notifications"
    assert consumed.attributes["tessera.event_type"] == "tasks.TaskAssigned.v1"
    # Its ancestry reaches back, span by span, through the relay's publish span in tasks,
    # to the request the gateway received: one trace, no gap.
    chain = [consumed]
    while chain[-1].parent_span_id in trace:
        chain.append(trace[chain[-1].parent_span_id])
    kinds = [(s.service, s.kind) for s in chain]
    assert ("tessera-tasks", PRODUCER) in kinds, kinds
    assert ("tessera-tasks", SERVER) in kinds, kinds
    assert kinds[-1] == ("tessera-gateway", SERVER), kinds  # its parent is the test's own traceparent
    # The same trace holds the remote call tasks made to identity, and each process's spans.
    identity = [s for s in trace.values() if s.service == "tessera-identity" and s.kind == SERVER]
    assert identity
    assert all(trace[s.parent_span_id].kind == CLIENT for s in identity)
    assert {s.service for s in trace.values()} >= SERVICES
    # The queries are in it too: the outbox row is written in the request's transaction.
    queries = [s for s in trace.values() if s.service == "tessera-tasks" and s.kind == CLIENT]
    assert any("outbox" in str(s.attributes.get("db.statement", "")) for s in queries), queries
    # Exported in order by the same processes, the earlier, sampled-out request left nothing.
    assert unsampled_spans == []
    # A request's span is named by its route, never by the path with its ids.
    assert read_span.name == "GET /api/v1/tasks/{task_id}"
    assert all(task_id not in s.name for s in receiver.spans)
    # The tasks process logged the request with the ids of its server span in that trace.
    (request_line,) = [
        line
        for line in logged
        if line.get("logger") == "tessera.requests" and line.get("trace_id") == sampled
    ]
    assert trace[request_line["span_id"]].kind == SERVER
