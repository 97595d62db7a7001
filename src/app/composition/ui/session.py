"""Browser sessions for the web UI: the user's tokens in HttpOnly cookies, CSRF on every form.

- The access token rides in ``tessera_session`` (HttpOnly, SameSite=Lax, Secure where
  ``ui.secure_cookies``), checked on every page by the same verifier as the API's bearer
  tokens (Litestar's ``JWTCookieAuth``, revocations included). It lives as long as the token.
- The refresh token rides in ``tessera_renew``, sent only to ``/session``: when the access
  token has lapsed, a page sends the browser to ``/session/renew``, which rotates the pair and
  comes back; when that fails too, to the sign-in page with the page remembered in ``next``.
- Every POST carries a CSRF token (Litestar's CSRF middleware, double-submit cookie): forms
  in a hidden ``_csrf_token`` field, htmx requests in the ``x-csrftoken`` header the layout sets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.middleware import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.response import Redirect

from app.kernel.config import Settings
from app.kernel.security import AccessTokens, RevokedSessions, derived_secret
from contracts.identity import TokenPair

__all__ = (
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PAGE_PUBLIC",
    "RENEW_PATH",
    "BrowserSessions",
    "page_public",
    "safe_next",
)

SESSION_COOKIE = "tessera_session"
RENEW_COOKIE = "tessera_renew"
CSRF_COOKIE = "tessera_csrf"
CSRF_FIELD = "_csrf_token"  # Litestar's CSRF middleware reads this form field
CSRF_HEADER = "x-csrftoken"
SESSION_PATH = "/session"
RENEW_PATH = f"{SESSION_PATH}/renew"
SIGN_IN_PATH = "/sign-in"
PAGE_PUBLIC = "page_public"  # the opt key of pages anyone may open (sign-in, sign-up, assets)


def page_public(reason: str) -> dict[str, Any]:
    """Route opt: a page anyone may open, without a session; say why."""
    return {PAGE_PUBLIC: True, "public_because": reason}


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only, never another origin."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/board"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/board"
    return target


class BrowserSessions:
    """Sets and clears the session cookies, and guards the pages with them."""

    def __init__(
        self, settings: Settings, tokens: AccessTokens, revoked: RevokedSessions | None, *, group: str | None
    ) -> None:
        self._secure = settings.ui.secure_cookies
        self._renew_seconds = settings.security.refresh_token_ttl_seconds
        self.auth = tokens.cookie_auth(revoked, cookie=SESSION_COOKIE, exclude_opt_key=PAGE_PUBLIC)
        self.csrf = DefineMiddleware(
            CSRFMiddleware,
            config=CSRFConfig(
                secret=derived_secret(settings, group, "tessera web ui: csrf tokens"),
                cookie_name=CSRF_COOKIE,
                cookie_secure=self._secure,
                cookie_httponly=True,  # pages carry the token themselves; scripts never read it
                cookie_samesite="strict",
                header_name=CSRF_HEADER,
            ),
        )

    def begin(self, response: Response[Any], pair: TokenPair) -> Response[Any]:
        """``response``, setting the cookies of a new (or renewed) session."""
        response.set_cookie(self._cookie(SESSION_COOKIE, pair.access_token, "/", pair.expires_in))
        response.set_cookie(self._cookie(RENEW_COOKIE, pair.refresh_token, SESSION_PATH, self._renew_seconds))
        return response

    def end(self, response: Response[Any]) -> Response[Any]:
        """``response``, clearing the session's cookies."""
        response.set_cookie(self._cookie(SESSION_COOKIE, "", "/", 0))
        response.set_cookie(self._cookie(RENEW_COOKIE, "", SESSION_PATH, 0))
        return response

    @staticmethod
    def refresh_token(request: Request[Any, Any, Any]) -> str | None:
        return request.cookies.get(RENEW_COOKIE) or None

    @staticmethod
    def to_sign_in(request: Request[Any, Any, Any], *, renew: bool) -> Response[Any]:
        """Back to sign-in (or first to renewal), remembering the page the user was on.

        An htmx request is answered with ``HX-Redirect`` for the whole page, not a fragment.
        """
        page = request.headers.get("hx-current-url") or str(request.url)
        parts = urlsplit(page)
        here = safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))
        if request.method != "GET" and not request.headers.get("hx-request"):
            here = safe_next(request.headers.get("referer") and urlsplit(request.headers["referer"]).path)
        target = f"{RENEW_PATH if renew else SIGN_IN_PATH}?next={quote(here, safe='/')}"
        if request.headers.get("hx-request"):
            return Response(content=b"", status_code=200, headers={"HX-Redirect": target})
        return Redirect(target, status_code=303)

    def _cookie(self, key: str, value: str, path: str, max_age: int) -> Cookie:
        return Cookie(
            key=key,
            value=value,
            path=path,
            max_age=max_age,
            httponly=True,
            secure=self._secure,
            samesite="lax",  # sent on a top-level navigation from elsewhere; never on a cross-site POST
        )
