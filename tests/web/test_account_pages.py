"""A person's account in a real browser: name, password, sessions, their data, closing it."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.web.people import PASSWORD, Person

pytestmark = pytest.mark.slow


def test_a_person_renames_changes_password_takes_their_data_and_closes_the_account(
    browser: Browser, site: str, shots: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    cleo, dan = Person(browser, site, f"Cleo{tag}", shots), Person(browser, site, f"Dan{tag}", shots)
    try:
        cleo.sign_up()
        dan.sign_up()
        page = cleo.page
        page.get_by_role("link", name="Account").click()
        page.get_by_label("Display name").fill(f"Cleo {tag} R.")
        page.get_by_role("button", name="Save name").click()
        expect(page.get_by_role("status")).to_contain_text("Your name is saved")
        expect(page.locator(".who")).to_have_text(f"Cleo {tag} R.")

        page.get_by_label("Current password").fill("not my password")
        page.get_by_label("New password (8 characters or more)").fill("battery staple horse")
        page.get_by_role("button", name="Change password").click()
        expect(page.locator("#current_password-error")).to_contain_text("is not your password")
        page.get_by_label("Current password").fill(PASSWORD)
        page.get_by_label("New password (8 characters or more)").fill("battery staple horse")
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_role("status")).to_contain_text("Your password is changed")
        cleo.shot("account")

        with page.expect_download() as download:
            page.get_by_role("link", name="Download my data").click()
        exported = json.loads(Path(download.value.path()).read_text())
        assert exported["account"]["email"] == cleo.email

        page.get_by_label("Successor: search people by name").fill(f"dan{tag}")
        page.get_by_label(f"Dan{tag}").check()
        page.get_by_label("I understand my account and my data will be gone").check()
        page.get_by_role("button", name="Close my account").click()
        expect(page).to_have_url(re.compile(r"/account/closure/"))
        expect(page.get_by_test_id("closure-state")).to_have_text("Your account is closed.", timeout=20_000)
        cleo.shot("closure")
        page.goto(f"{site}/board")
        expect(page).to_have_url(re.compile(r"/sign-in\?next=/board"))
        assert cleo.violations == dan.violations == []
        assert cleo.inaccessible == []
    finally:
        cleo.close()
        dan.close()


def test_a_lapsed_session_renews_itself_and_a_lost_one_returns_to_the_page_after_sign_in(
    browser: Browser, site: str, shots: Path
) -> None:
    eve = Person(browser, site, f"Eve{uuid.uuid4().hex[:6]}", shots)
    try:
        eve.sign_up()
        page = eve.page
        # The access token's cookie lapsed: the refresh cookie renews the session on the way.
        eve.context.clear_cookies(name="tessera_session")
        page.goto(f"{site}/board?label=urgent")
        expect(page).to_have_url(f"{site}/board?label=urgent")
        expect(page.get_by_label("Label", exact=True)).to_have_value("urgent")
        # Both lapsed: sign in again, and land where the user was going.
        eve.context.clear_cookies(name="tessera_session")
        eve.context.clear_cookies(name="tessera_renew")
        page.goto(f"{site}/board?label=urgent")
        expect(page).to_have_url(re.compile(r"/sign-in\?next="))
        page.get_by_label("E-mail").fill(eve.email)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(f"{site}/board?label=urgent")
        # Signing out ends the session: the board asks for a sign-in again.
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/sign-in"))
        page.goto(f"{site}/board")
        expect(page).to_have_url(re.compile(r"/sign-in\?next=/board"))
    finally:
        eve.close()
