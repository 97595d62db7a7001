"""What every page of the web UI shares: the contracts it calls, the viewer, the layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK
from litestar.utils.scope.state import ScopeState

from app.composition.ui.session import CSRF_FIELD, BrowserSessions
from contracts import Principal
from contracts.accounts import AccountsApi
from contracts.activity import ActivityApi
from contracts.identity import AccountRecord, IdentityApi
from contracts.notifications import NotificationsApi
from contracts.tasks import TasksApi

__all__ = ("Contracts", "contracts_of", "form_of", "fragment", "page", "principal_of", "sessions_of")


@dataclass(frozen=True, slots=True)
class Contracts:
    """The contracts the pages call, as this process implements them."""

    identity: IdentityApi
    tasks: TasksApi
    notifications: NotificationsApi
    activity: ActivityApi
    accounts: AccountsApi


def contracts_of(state: State) -> Contracts:
    found: Contracts = state["ui_contracts"]
    return found


def sessions_of(state: State) -> BrowserSessions:
    found: BrowserSessions = state["ui_sessions"]
    return found


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    assert isinstance(user, Principal), "the session middleware lets no page through without one"
    return user


async def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


async def page(
    request: Request[Any, Any, Any],
    name: str,
    *,
    title: str,
    status_code: int = HTTP_200_OK,
    viewer: AccountRecord | None = None,
    **context: Any,
) -> Template:
    """A full page (or, for an htmx request naming a fragment, just that fragment)."""
    contracts = contracts_of(request.app.state)
    unread = 0
    if isinstance(request.scope.get("user"), Principal):
        principal = principal_of(request)
        viewer = viewer or await contracts.identity.account_record(principal.user_id)
        unread = (await contracts.notifications.unread_count(principal)).unread
    return Template(
        template_name=name,
        context={
            "title": title,
            "viewer": viewer,
            "csrf": ScopeState.from_scope(request.scope).csrf_token,
            "bell_seconds": request.app.state["ui_bell_seconds"],
            "path": request.url.path,
            "unread": unread,
            **context,
        },
        status_code=status_code,
        media_type=MediaType.HTML,
    )


def fragment(name: str, *, status_code: int = HTTP_200_OK, **context: Any) -> Template:
    return Template(template_name=name, context=context, status_code=status_code, media_type=MediaType.HTML)
