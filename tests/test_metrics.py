"""``/metrics``: Prometheus text, open to a scraper, labelled by route template and never by user data.

The counters are the process's own (prometheus-client's default registry), shared by every
app a test process builds: each test reads them before and after, and asserts the change.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.composition.container import compose
from app.composition.web import create_app
from app.kernel.config import MetricsSettings, ServerSettings, Settings
from tests.conftest import bearer, log_in, register
from tests.e2e.flow import eventually
from tests.servers import free_port, server_thread

TASK_ROUTE = "/api/v1/tasks/{task_id}"


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient[Any]) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def test_requests_are_counted_by_route_template_status_class_and_method(client: TestClient[Any]) -> None:
    user = register(client)
    auth = bearer(log_in(client, user["email"])["access_token"])
    task = client.post("/api/v1/tasks", json={"title": "Count me"}, headers=auth).json()
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/api/v1/tasks/{task['id']}", headers=auth).status_code == 200
    assert client.get(f"/api/v1/tasks/{task['id']}").status_code == 401
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "tessera_http_requests_total"
    assert delta(requests, method="GET", route=TASK_ROUTE, status_class="2xx") == 3
    assert delta(requests, method="GET", route=TASK_ROUTE, status_class="4xx") == 1
    assert delta(requests, method="GET", route="unmatched", status_class="4xx") == 1
    duration = "tessera_http_request_duration_seconds_count"
    assert delta(duration, method="GET", route=TASK_ROUTE) == 4
    # No label carries what a user sent: ids, e-mail addresses, raw paths.
    assert task["id"] not in after
    assert user["email"] not in after
    assert "/no/such/page" not in after


def test_the_pipeline_and_the_pools_are_measured(client: TestClient[Any]) -> None:
    before = scrape(client)
    ada, bob = register(client), register(client, display_name="Bob")
    auth = bearer(log_in(client, ada["email"])["access_token"])
    created = client.post("/api/v1/tasks", json={"title": "For Bob", "assignee_id": bob["id"]}, headers=auth)
    assert created.status_code == 201
    handled = {"consumer": "notifications", "event_type": "tasks.TaskAssigned.v1", "outcome": "handled"}
    expected = {
        ("tessera_relay_published_events_total", frozenset({("module", "tasks")})): 2,  # created, assigned
        ("tessera_relay_published_events_total", frozenset({("module", "identity")})): 2,  # registered x2
        ("tessera_inbox_events_total", frozenset(handled.items())): 1,
        ("tessera_event_handling_delay_seconds_count", frozenset({("consumer", "notifications")})): 1,
    }

    def changes() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        old, new = samples(before), samples(scrape(client))
        found = {key: new.get(key, 0.0) - old.get(key, 0.0) for key in expected}
        return found if found == expected else None  # the relay publishes just after the commit

    eventually(changes, within=10, what=f"the pipeline's counters moved by {expected}")
    after = scrape(client)
    assert value(after, "tessera_db_pool_size", module="tasks") > 0
    assert value(after, "process_cpu_seconds_total") > 0


def test_metrics_can_be_turned_off(migrated: Settings) -> None:
    settings = msgspec.structs.replace(migrated, metrics=MetricsSettings(enabled=False))
    with TestClient(app=create_app(compose(settings))) as client:
        assert client.get("/metrics").status_code == 404


def test_metrics_on_a_port_of_their_own_leave_the_application_port(migrated: Settings) -> None:
    settings = msgspec.structs.replace(migrated, metrics=MetricsSettings(port=free_port()))
    with TestClient(app=create_app(compose(settings))) as client:
        assert client.get("/metrics").status_code == 404


def test_a_request_is_logged_once_with_its_route_status_and_duration(migrated: Settings, caplog: Any) -> None:
    settings = msgspec.structs.replace(migrated, server=ServerSettings(request_log=True))
    with server_thread(create_app(compose(settings)), free_port()) as base:
        caplog.set_level("INFO", logger="tessera.requests")
        response = httpx.get(f"{base}/health/live", headers={"x-request-id": "probe-1"})
    assert response.status_code == 200
    lines = [
        r for r in caplog.records if r.name == "tessera.requests" and r.__dict__["route"] == "/health/live"
    ]
    assert len(lines) == 1
    line = lines[0].__dict__
    assert (line["method"], line["status"]) == ("GET", 200)
    assert line["duration_ms"] > 0
