"""A real browser for the tests of pages: Debian's Chromium, driven by Playwright (nothing downloaded).

Without ``/usr/bin/chromium`` the browser tests are skipped; under CI they fail instead.

While Playwright's sync API is open, the test thread has a running event loop, which
``asyncio.run`` and async tests refuse: browser tests are sync, and run after every other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import service_unavailable
from tests.e2e.cluster import monolith, split_cluster

CHROMIUM = Path("/usr/bin/chromium")
# Nothing of the browser's own on the network (update checks, sync, first-run pages): every
# request a test sees is one its page made.
QUIET = [
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the browser last (the sort is stable): see the module docstring."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session; each test has its own context (``page``)."""
    if not CHROMIUM.exists():
        service_unavailable(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=QUIET)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a context of its own: no cookies, storage or cache shared between tests."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session", params=["monolith", "split"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The public address: the monolith, or the gateway of the four-process split over NATS."""
    tmp_path = tmp_path_factory.mktemp(request.param)
    if request.param == "monolith":
        with monolith(tmp_path) as base:
            yield base
    else:
        with split_cluster(tmp_path) as cluster:
            yield cluster.gateway


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    """Screenshots for a reviewer (not committed): build/screenshots/<test>/."""
    path = Path("build/screenshots") / re.sub(r"[^\w.-]+", "_", request.node.name)
    path.mkdir(parents=True, exist_ok=True)
    return path
