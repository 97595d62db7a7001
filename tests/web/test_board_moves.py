"""Moving cards three ways (button, keyboard, drag-and-drop), filters kept in the URL, and forms
refused without their CSRF token."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web.people import PASSWORD, Person

pytestmark = pytest.mark.slow


def _create(page: Page, title: str, *, labels: str = "", priority: str = "normal") -> None:
    page.get_by_text("New task").click()
    form = page.locator("#new-task")
    form.get_by_label("Title").fill(title)
    form.get_by_label("Labels (comma-separated)").fill(labels)
    form.get_by_label("Priority").select_option(priority)
    form.get_by_role("button", name="Create task").click()
    expect(page.get_by_role("link", name=title)).to_be_visible()


def _column(page: Page, status: str, title: str) -> None:
    expect(page.locator(f".column[data-status={status}]").get_by_role("link", name=title)).to_be_visible()


def test_a_card_moves_by_button_by_keyboard_and_by_drag_and_drop(
    browser: Browser, site: str, shots: Path
) -> None:
    ivy = Person(browser, site, f"Ivy{uuid.uuid4().hex[:6]}", shots)
    try:
        ivy.sign_up()
        page = ivy.page
        _create(page, "Card one")
        page.get_by_role("button", name="Move “Card one” to In progress").click()
        _column(page, "in_progress", "Card one")
        page.get_by_role("button", name="Move “Card one” to Done").focus()
        page.keyboard.press("Enter")
        _column(page, "done", "Card one")
        card = page.locator(".card", has=page.get_by_role("link", name="Card one"))
        card.drag_to(page.locator(".column[data-status=todo]"))
        _column(page, "todo", "Card one")
        # A second page of the same board, now stale: its move is refused, with a message.
        stale = ivy.context.new_page()
        stale.goto(f"{site}/board")
        page.get_by_role("button", name="Move “Card one” to Done").click()
        _column(page, "done", "Card one")
        stale.get_by_role("button", name="Move “Card one” to In progress").click()
        expect(stale.get_by_role("alert")).to_contain_text("This card changed since you loaded the board")
        stale.get_by_role("link", name="Reload").click()
        _column(stale, "done", "Card one")
        assert ivy.violations == []
    finally:
        ivy.close()


def test_filters_stay_in_the_url_and_narrow_the_board(browser: Browser, site: str, shots: Path) -> None:
    jo = Person(browser, site, f"Jo{uuid.uuid4().hex[:6]}", shots)
    try:
        jo.sign_up()
        page = jo.page
        _create(page, "Fix the login bug", labels="bug", priority="urgent")
        _create(page, "Plan the offsite", labels="team")
        page.get_by_label("Label", exact=True).fill("bug")
        page.get_by_role("button", name="Filter").click()
        expect(page).to_have_url(re.compile(r"/board\?.*label=bug"))
        expect(page.get_by_role("link", name="Fix the login bug")).to_be_visible()
        expect(page.get_by_role("link", name="Plan the offsite")).to_have_count(0)
        page.reload()  # the filter is the URL: a reload (or a shared link) shows the same
        expect(page.get_by_role("link", name="Plan the offsite")).to_have_count(0)
        page.goto(f"{site}/board?priority=normal")
        expect(page.get_by_role("link", name="Plan the offsite")).to_be_visible()
        expect(page.get_by_role("link", name="Fix the login bug")).to_have_count(0)
        page.goto(f"{site}/board?q=offsite")
        expect(page.get_by_role("link", name="Plan the offsite")).to_be_visible()
        expect(page.get_by_role("link", name="Fix the login bug")).to_have_count(0)
    finally:
        jo.close()


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(site: str) -> None:
    with httpx.Client(base_url=site, timeout=10) as browser_like:
        browser_like.get("/sign-up")  # the CSRF cookie
        email = f"kim-{uuid.uuid4().hex[:8]}@example.com"
        form = {"display_name": "Kim", "email": email, "password": PASSWORD}
        refused = browser_like.post("/sign-up", data=form)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        assert refused.headers["content-type"].startswith("text/html")
        token = browser_like.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD})
        assert token.status_code == 401  # no account was made
        htmx = browser_like.post(
            "/sign-in", data={"email": email, "password": PASSWORD}, headers={"HX-Request": "true"}
        )
        assert htmx.status_code == 403
