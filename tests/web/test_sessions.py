"""The browser session's cookies and redirects, read off the responses (no browser needed)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from app.composition.container import compose
from app.composition.ui import UI_CSP
from app.composition.web import create_app
from app.kernel.config import UiSettings
from tests.conftest import make_settings, run_async

PASSWORD = "correct horse battery"


@pytest.fixture
def secure_client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    """The monolith in this process with production's cookie setting (HTTPS only)."""
    settings = make_settings(tmp_path / "data", ui=UiSettings(secure_cookies=True))

    async def upgrade() -> None:
        composition = compose(settings)
        await composition.upgrade()
        await composition.aclose()

    run_async(upgrade())
    with TestClient(app=create_app(compose(settings)), base_url="https://testserver.local") as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert found is not None, "the form carries a CSRF token"
    return found.group(1)


def _cookie(response: Any, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0].lower()


def test_session_cookies_are_httponly_samesite_and_secure_in_production(
    secure_client: TestClient[Any],
) -> None:
    page = secure_client.get("/sign-up")
    csrf_cookie = _cookie(page, "tessera_csrf")
    assert {"httponly", "secure", "samesite=strict"} <= {part.strip() for part in csrf_cookie.split(";")}
    signed_up = secure_client.post(
        "/sign-up",
        data={
            "_csrf_token": _csrf(page.text),
            "display_name": "Lena",
            "email": f"lena-{uuid.uuid4().hex[:8]}@example.com",
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert (signed_up.status_code, signed_up.headers["location"]) == (303, "/board")
    session = {part.strip() for part in _cookie(signed_up, "tessera_session").split(";")}
    renew = {part.strip() for part in _cookie(signed_up, "tessera_renew").split(";")}
    assert {"httponly", "secure", "samesite=lax", "path=/", "max-age=900"} <= session
    assert {"httponly", "secure", "samesite=lax", "path=/session"} <= renew


def test_pages_carry_their_policy_and_the_api_keeps_its_own(client: TestClient[Any]) -> None:
    assert client.get("/sign-in").headers["content-security-policy"] == UI_CSP
    assert client.get("/static/tessera.css").headers["content-security-policy"] == UI_CSP
    api = client.get("/api/v1/tasks").headers["content-security-policy"]
    assert api == "default-src 'none'; frame-ancestors 'none'"


@pytest.mark.parametrize("target", ["//evil.example/board", "https://evil.example/", "/\\evil.example"])
def test_sign_in_returns_only_to_a_page_of_this_site(client: TestClient[Any], target: str) -> None:
    page = client.get("/sign-in", params={"next": target})
    assert 'name="next" value="/board"' in page.text


def test_a_page_without_a_session_goes_to_renewal_and_htmx_is_told_to_reload_there(
    client: TestClient[Any],
) -> None:
    page = client.get("/board", params={"label": "x"}, follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/session/renew?next=/board%3Flabel%3Dx")
    renewal = client.get(page.headers["location"], follow_redirects=False)
    assert renewal.headers["location"] == "/sign-in?next=/board?label=x"
    htmx = client.get(
        "/notifications/bell",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver.local/tasks?x=1"},
        follow_redirects=False,
    )
    assert (htmx.status_code, htmx.headers["hx-redirect"]) == (200, "/session/renew?next=/tasks%3Fx%3D1")
