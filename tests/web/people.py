"""A person at a browser: their own context (cookies), watched for policy violations."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, expect

PASSWORD = "correct horse battery"


class Person:
    """One person's browser: a context of its own (cookies), watched for policy violations."""

    def __init__(self, browser: Browser, site: str, name: str, shots: Path) -> None:
        self.site, self.name, self.shots = site, name, shots
        self.email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        self.context: BrowserContext = browser.new_context(
            viewport={"width": 1280, "height": 800}, accept_downloads=True
        )
        self.page: Page = self.context.new_page()
        self.violations: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.violations.append(str(error)))
        self.page.on("request", lambda r: None if r.url.startswith(site) else self.foreign.append(r.url))

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def sign_up(self) -> None:
        self.page.goto(f"{self.site}/")
        expect(self.page).to_have_url(re.compile(r"/sign-in\?next="))
        self.page.get_by_role("link", name="Create an account").click()
        self.page.get_by_label("Your name").fill(self.name)
        self.page.get_by_label("E-mail").fill(self.email)
        self.page.get_by_label("Password (8 characters or more)").fill(PASSWORD)
        self.page.get_by_role("button", name="Create account").click()
        expect(self.page).to_have_url(f"{self.site}/board")
        expect(self.page.get_by_role("heading", name="Board")).to_be_visible()

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
