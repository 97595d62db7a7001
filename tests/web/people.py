"""A person at a browser: their own context (cookies), watched for policy violations."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, ViewportSize, expect

PASSWORD = "correct horse battery"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
SERIOUS = frozenset({"serious", "critical"})
# Every address the page names: links, scripts, styles, images, icons, forms.
LINKS = """() => [...document.querySelectorAll('[href], [src], [action]')]
    .map(e => e.getAttribute('href') ?? e.getAttribute('src') ?? e.getAttribute('action'))"""


def _elsewhere(link: str, site: str) -> bool:
    """True for an address on another origin (relative ones and this site's are home)."""
    return link.startswith("//") or (
        bool(re.match(r"^[a-z][a-z0-9+.-]*:", link)) and not link.startswith(site)
    )


class Person:
    """One person's browser: a context of its own (cookies), watched for policy violations."""

    def __init__(self, browser: Browser, site: str, name: str, shots: Path) -> None:
        self.site, self.name, self.shots = site, name, shots
        self.email = f"{name.lower()}-{uuid.uuid4().hex[:8]}@example.com"
        self.context: BrowserContext = browser.new_context(viewport=DESKTOP, accept_downloads=True)
        self.page: Page = self.context.new_page()
        self.violations: list[str] = []  # content-security-policy reports, script errors
        self.inaccessible: list[str] = []  # axe-core's serious and critical findings
        self.foreign: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.violations.append(str(error)))
        self.page.on("request", lambda r: None if r.url.startswith(site) else self.foreign.append(r.url))

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def sign_up(self, *, look: bool = False) -> None:
        """From the front door: sent to sign in, on to create an account, then the board."""
        self.page.goto(f"{self.site}/")
        expect(self.page).to_have_url(re.compile(r"/sign-in\?next="))
        if look:
            self.shot("sign-in")
        self.page.get_by_role("link", name="Create an account").click()
        if look:
            self.shot("sign-up")
        self.page.get_by_label("Your name").fill(self.name)
        self.page.get_by_label("E-mail").fill(self.email)
        self.page.get_by_label("Password (8 characters or more)").fill(PASSWORD)
        self.page.get_by_role("button", name="Create account").click()
        expect(self.page).to_have_url(f"{self.site}/board")
        expect(self.page.get_by_role("heading", name="Board")).to_be_visible()

    def shot(self, name: str) -> None:
        """Look at the page: a screenshot at desktop and at phone width, and axe-core's verdict.

        A serious or critical accessibility violation fails the test (see ``assert_accessible``).
        """
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        self.page.set_viewport_size(PHONE)
        self.page.screenshot(path=str(self.shots / f"{name}-phone.png"), full_page=True)
        self.page.set_viewport_size(DESKTOP)
        self.foreign += [
            f"{name}: {link}" for link in self.page.evaluate(LINKS) if _elsewhere(link, self.site)
        ]
        found = Axe().run(self.page).response["violations"]
        self.inaccessible += [
            f"{name}: {v['id']} ({v['impact']}) at {[n['target'] for n in v['nodes']][:3]}"
            for v in found
            if v["impact"] in SERIOUS
        ]

    def close(self) -> None:
        self.context.close()
