"""Seen from outside: a real Prometheus scrapes the monolith (two workers) and every process of
the split, and each request leaves one structured log line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster import GROUPS, migrate, split_cluster
from tests.e2e.flow import eventually, notifications_of, register_and_log_in
from tests.prometheus import Prometheus, prometheus
from tests.servers import TEST_SERVER_CONFIG, clean_env, free_port, server_process, wait_until_ready

pytestmark = pytest.mark.slow

READS = 20
TASK_ROUTE = "/api/v1/tasks/{task_id}"
WITHIN = 30.0  # seconds for a scrape (every second) to show what happened


def _assign_and_read(base: str) -> str:
    """Ada creates a task for Bob (two events, one notification), then reads it READS times.

    Returns Ada's access token.
    """
    with httpx.Client(base_url=base, timeout=15) as http:
        _, ada = register_and_log_in(http, "Ada")
        bob_id, bob = register_and_log_in(http, "Bob")
        created = http.post("/api/v1/tasks", json={"title": "Watch me", "assignee_id": bob_id}, headers=ada)
        assert created.status_code == 201, created.text
        task_id: str = created.json()["id"]
        for n in range(READS):
            caller = {"x-request-id": f"read-{n}", "traceparent": f"00-{n + 1:032x}-{n + 1:016x}-01"}
            read = http.get(f"/api/v1/tasks/{task_id}", headers={**ada, **caller})
            assert read.status_code == 200
        eventually(
            lambda: notifications_of(http, bob, task_id, "task_assigned"), within=WITHIN, what="notified"
        )
    return ada["Authorization"].removeprefix("Bearer ")


def _equals(prom: Prometheus, promql: str, expected: float) -> None:
    prom.eventually(
        lambda: True if prom.scalar(promql) == expected else None,
        within=WITHIN,
        what=f"{promql} == {expected} (last: {prom.scalar(promql)})",
    )


def _request_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for text in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if record.get("logger") == "tessera.requests":
            lines.append(record)
    return lines


def test_prometheus_scrapes_the_monolith_with_two_workers_and_each_request_is_logged_once(
    tmp_path: Path,
) -> None:
    config = tmp_path / "monolith.toml"
    config.write_text(TEST_SERVER_CONFIG + "[events]\nstatus_interval_seconds = 0.5\n")
    env = clean_env(TESSERA_CONFIG=str(config), TESSERA_DATA_DIR=str(tmp_path / "data"))
    migrate(env)
    port, log = free_port(), tmp_path / "server.log"
    with server_process(env, "--port", str(port), "--workers", "2", log=log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=process, log=log)
        with prometheus(tmp_path, {"tessera": f"127.0.0.1:{port}"}) as prom:
            prom.eventually(lambda: prom.targets() == {"tessera": "up"} or None, within=WITHIN, what="up")
            token = _assign_and_read(base)
            reads = (
                f'sum(tessera_http_requests_total{{method="GET",route="{TASK_ROUTE}",status_class="2xx"}})'
            )
            _equals(prom, reads, READS)  # both workers' counts, summed by the multiprocess collector
            _equals(prom, 'sum(tessera_relay_published_events_total{module="tasks"})', 2)
            _equals(prom, 'sum(tessera_inbox_events_total{consumer="notifications",outcome="handled"})', 1)
            _equals(prom, 'max(tessera_outbox_events{module="tasks",status="pending"})', 0)
            _equals(prom, "count(process_resident_memory_bytes)", 2)  # one series per worker
            # Each worker: database.pool_size readers on the SQLite file, plus two for its writes.
            _equals(prom, 'sum(tessera_db_pool_size{module="tasks"})', 2 * (16 + 2))
    reads_logged = [r for r in _request_lines(log) if r["route"] == TASK_ROUTE and r["method"] == "GET"]
    assert sorted(r["correlation_id"] for r in reads_logged) == sorted(f"read-{n}" for n in range(READS))
    # Tracing is off here: each line carries the trace its caller passed in (traceparent).
    assert {r["correlation_id"]: r["trace_id"] for r in reads_logged} == {
        f"read-{n}": f"{n + 1:032x}" for n in range(READS)
    }
    assert all(r["status"] == 200 for r in reads_logged)
    assert all("user_id" in r and r["duration_ms"] > 0 for r in reads_logged)
    written = log.read_text(errors="replace")
    assert "\x1b" not in written  # no colour codes in a JSON log
    assert token not in written  # nor any credential


def test_prometheus_scrapes_every_process_of_the_split(tmp_path: Path) -> None:
    with split_cluster(tmp_path) as cluster:
        jobs = {group: f"127.0.0.1:{cluster.ports[group]}" for group in GROUPS}
        with prometheus(tmp_path, jobs) as prom:
            everyone_up = dict.fromkeys(GROUPS, "up")
            prom.eventually(lambda: prom.targets() == everyone_up or None, within=WITHIN, what="all up")
            _assign_and_read(cluster.gateway)
            gateway_reads = (
                'sum(tessera_http_requests_total{job="gateway",method="GET",status_class="2xx",'
                'route=~"/api/v1/tasks.*"})'
            )
            _equals(prom, gateway_reads, READS)
            # Each task view asks identity for the profiles: one remote call per read, at least.
            prom.eventually(
                lambda: (
                    True
                    if (prom.scalar('sum(tessera_rpc_calls_total{job="tasks",contract="identity"})') or 0)
                    >= READS
                    else None
                ),
                within=WITHIN,
                what="tasks called identity",
            )
            _equals(prom, 'sum(tessera_rpc_errors_total{job="tasks"}) or vector(0)', 0)
            _equals(prom, 'tessera_circuit_breaker_state{job="tasks",group="identity"}', 0)
            _equals(prom, 'sum(tessera_relay_published_events_total{job="tasks"})', 2)
            handled = 'sum(tessera_inbox_events_total{job="notifications",outcome="handled"})'
            _equals(prom, handled, 1)
            _equals(prom, 'tessera_bus_connected{job="notifications",bus="nats"}', 1)


def test_metrics_on_a_port_of_their_own_report_every_worker(tmp_path: Path) -> None:
    config = tmp_path / "monolith.toml"
    config.write_text(TEST_SERVER_CONFIG)
    env = clean_env(TESSERA_CONFIG=str(config), TESSERA_DATA_DIR=str(tmp_path / "data"))
    migrate(env)
    port, metrics_port, log = free_port(), free_port(), tmp_path / "server.log"
    env["TESSERA_METRICS__PORT"] = str(metrics_port)
    with server_process(env, "--port", str(port), "--workers", "2", log=log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, process=process, log=log)
        for _ in range(READS):
            assert httpx.get(f"{base}/health/live").status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 404  # not beside the API any more
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    live = 'tessera_http_requests_total{method="GET",route="/health/live",status_class="2xx"}'
    counted = [line for line in scraped.splitlines() if line.startswith(live)]
    # wait_until_ready's probes count too: at least READS, from whichever workers answered
    assert counted
    assert float(counted[0].rsplit(" ", 1)[1]) >= READS
