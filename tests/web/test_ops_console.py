"""The ops console in a real browser, on the gateway of the four-process split over NATS:
administrators only; it shows the module map, and the outbox backlog rising while the broker
is cut and draining once it is back, without a reload."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.cluster import split_cluster
from tests.e2e.events import broker_proxy, events_section
from tests.servers import TESSERA
from tests.web.people import PASSWORD, Person

pytestmark = pytest.mark.slow

MODULES = ("identity", "accounts", "tasks", "notifications", "activity")


def test_the_console_is_for_administrators_and_shows_the_backlog_while_the_broker_is_cut(
    browser: Browser, tmp_path: Path, shots: Path
) -> None:
    with (
        broker_proxy("nats") as proxy,
        split_cluster(tmp_path, events=events_section("nats", proxy)) as cluster,
    ):
        assert proxy is not None
        site, tag = cluster.gateway, uuid.uuid4().hex[:6]
        grace, hal = Person(browser, site, f"Grace{tag}", shots), Person(browser, site, f"Hal{tag}", shots)
        try:
            grace.sign_up()
            hal.sign_up()
            subprocess.run(
                [TESSERA, "users", "make-admin", grace.email],
                env=cluster.env,
                check=True,
                capture_output=True,
            )
            hal.page.goto(f"{site}/ops")
            expect(hal.page.get_by_role("alert")).to_contain_text("for administrators")
            expect(hal.page.get_by_role("link", name="Ops")).to_have_count(0)

            console = grace.page
            console.goto(f"{site}/board")
            console.get_by_role("link", name="Ops").click()
            table = console.get_by_test_id("module-map")
            for module in MODULES:
                expect(table.locator(f"tr[data-module={module}]")).to_contain_text("ok")
            pending = console.get_by_test_id("pending-tasks")
            expect(pending).to_have_text("0")
            grace.shot("ops-console")

            proxy.cut()
            with httpx.Client(base_url=site, timeout=10) as api:
                token = api.post("/api/v1/auth/token", json={"email": hal.email, "password": PASSWORD})
                bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
                for n in range(3):
                    created = api.post("/api/v1/tasks", json={"title": f"While cut {n}"}, headers=bearer)
                    assert created.status_code == 201, created.text
            expect(pending).to_have_text(re.compile(r"^[3-9]$|^\d\d+$"), timeout=10_000)
            grace.shot("ops-console-broker-cut")
            proxy.restore()
            expect(pending).to_have_text("0", timeout=30_000)
            expect(console.get_by_test_id("inbox-notifications")).to_have_text("0", timeout=10_000)
            assert grace.violations == hal.violations == []
            assert grace.inaccessible == []
        finally:
            grace.close()
            hal.close()
