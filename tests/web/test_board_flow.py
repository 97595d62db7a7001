"""Two people use the board in a real browser, against the monolith and a split's gateway.

A signs up, B signs up; A creates a task assigned to B, finding B by name; B's bell rises
without a reload; B opens the task and moves it to done; A sees it done, on the board and
in the task's timeline; a stale edit is refused with a message, never saved over.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.web.people import Person

pytestmark = pytest.mark.slow


def test_two_people_share_a_task_from_creation_to_done(browser: Browser, site: str, shots: Path) -> None:
    tag = uuid.uuid4().hex[:6]
    ada, bob = Person(browser, site, f"Ada{tag}", shots), Person(browser, site, f"Bob{tag}", shots)
    try:
        ada.sign_up(look=True)
        bob.sign_up()
        expect(bob.page.get_by_test_id("unread")).to_have_text("0")

        # A creates a task for B, finding B by name.
        ada.page.get_by_text("New task").click()
        new = ada.page.locator("#new-task")
        new.get_by_label("Title").fill("Write the release notes")
        new.get_by_label("Labels (comma-separated)").fill("docs, release")
        new.get_by_label("Priority").select_option("high")
        new.get_by_label("Assignee: search people by name").fill(f"bob{tag}")
        new.get_by_label(f"Bob{tag}").check()
        ada.shot("board-new-task")
        new.get_by_role("button", name="Create task").click()
        todo = ada.page.locator(".column[data-status=todo]")
        expect(todo.get_by_role("link", name="Write the release notes")).to_be_visible()

        # B's bell rises without a reload, then B works the task through to done.
        expect(bob.page.get_by_test_id("unread")).to_have_text("1", timeout=2_000)
        bob.page.get_by_role("link", name="Inbox").click()
        expect(bob.page.get_by_test_id("inbox")).to_contain_text("Write the release notes")
        bob.shot("inbox")
        bob.page.get_by_role("button", name="Mark “Write the release notes” read").click()
        expect(bob.page.get_by_test_id("unread")).to_have_text("0")
        bob.page.get_by_role("link", name="Board").click()
        bob.page.get_by_role("link", name="Write the release notes").click()
        expect(bob.page.get_by_test_id("status")).to_have_text("To do")
        bob.page.get_by_role("button", name="Complete").click()
        expect(bob.page.get_by_test_id("status")).to_have_text("Done")
        bob.shot("task-done")

        # A sees it done, on the board and in the timeline.
        ada.page.reload()
        done = ada.page.locator(".column[data-status=done]")
        expect(done.get_by_role("link", name="Write the release notes")).to_be_visible()
        ada.shot("board")
        ada.page.get_by_role("link", name="Write the release notes").click()
        expect(ada.page.get_by_test_id("timeline")).to_contain_text(f"Bob{tag}")
        expect(ada.page.get_by_test_id("timeline")).to_contain_text("to Done", timeout=2_000)

        # A stale edit: A's page is older than B's change, and says so instead of saving over it.
        bob.page.goto(ada.page.url)
        bob.page.get_by_label("Title").fill("Release notes, edited by Bob")
        bob.page.get_by_role("button", name="Save").click()
        expect(bob.page.get_by_role("heading", name="Release notes, edited by Bob")).to_be_visible()
        ada.page.get_by_label("Title").fill("Release notes, edited by Ada")
        ada.page.get_by_role("button", name="Save").click()
        expect(ada.page.get_by_test_id("conflict")).to_contain_text("your changes were not saved")
        ada.shot("conflict")
        ada.page.get_by_role("link", name="Reload").click()
        expect(ada.page.get_by_role("heading", name="Release notes, edited by Bob")).to_be_visible()

        # The owner takes the task off Bob, then deletes it.
        ada.page.get_by_label("Nobody").check()
        ada.page.get_by_role("button", name="Save").click()
        expect(ada.page.get_by_test_id("status").locator("..")).to_contain_text("unassigned")
        ada.page.get_by_role("button", name="Delete task").click()
        expect(ada.page).to_have_url(f"{site}/board")
        expect(ada.page.get_by_role("link", name="Release notes, edited by Bob")).to_have_count(0)

        assert ada.violations == bob.violations == []
        assert ada.foreign == bob.foreign == []
        assert ada.inaccessible == bob.inaccessible == []
    finally:
        ada.close()
        bob.close()
