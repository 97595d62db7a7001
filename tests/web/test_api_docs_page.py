"""The API docs page in a real browser: every operation shown, all from Tessera, within the page's policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Error, Page, Request, expect

from tests.e2e.cluster import monolith

pytestmark = pytest.mark.slow

METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with monolith(tmp_path_factory.mktemp("docs")) as base:
        yield base


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_the_docs_page_shows_every_operation_with_nothing_from_another_origin(
    server: str, page: Page
) -> None:
    requested: list[str] = []
    violations: list[str] = []
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    def on_error(error: Error) -> None:
        errors.append(str(error))

    def on_request(request: Request) -> None:
        requested.append(request.url)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", on_error)
    operations = _operations(httpx.get(f"{server}/schema/openapi.json", timeout=10).json())

    page.goto(f"{server}/schema")
    page.locator(".opblock").first.wait_for()

    # Swagger UI lists an operation once under each of its tags.
    expect(page.locator(".opblock")).to_have_count(sum(len(op.get("tags") or [""]) for *_, op in operations))
    shown = page.eval_on_selector_all(
        ".opblock-summary",
        """summaries => summaries.map(s => [
            s.querySelector('.opblock-summary-method').textContent,
            s.querySelector('[data-path]').dataset.path,
        ])""",
    )
    assert {(method, path) for method, path in shown} == {(method, path) for method, path, _ in operations}
    expect(page).to_have_title("Tessera API")
    assert {f"{server}/schema", f"{server}/schema/openapi.json"} <= set(requested)
    assert {_origin(url) for url in requested} == {server}, requested
    assert violations == []
    assert errors == []
