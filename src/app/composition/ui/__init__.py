"""The web UI: server-rendered pages (Jinja2 + htmx) for people, a backend-for-frontend.

It calls the modules through their contracts only — the local services in the monolith,
the remote adapters in a split's gateway — so it runs unchanged in both. Every asset is
served from ``static/`` here (htmx vendored with its licence); no page names another origin.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Request, Response, Router
from litestar.enums import MediaType
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_403_FORBIDDEN
from litestar.template import TemplateConfig

from app.composition.container import Composition
from app.composition.edge import CSP_OPT
from app.composition.ops import OpsApi
from app.composition.ui.account import ACCOUNT
from app.composition.ui.common import Contracts
from app.composition.ui.console import CONSOLE
from app.composition.ui.pages import PAGES
from app.composition.ui.session import BrowserSessions, page_public
from app.kernel.security import public
from contracts.accounts import ACCOUNTS
from contracts.activity import ACTIVITY
from contracts.identity import IDENTITY
from contracts.notifications import NOTIFICATIONS
from contracts.tasks import TASKS

__all__ = ("UI_CSP", "WebUi")

# Pages load scripts, styles and images from this origin only, and post forms only to it.
UI_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATIC_PATH = "/static"


CALLED = (IDENTITY, TASKS, NOTIFICATIONS, ACTIVITY, ACCOUNTS)  # every contract the pages call


class WebUi:
    """The UI of one composition: its router, its templates and what its pages share."""

    @staticmethod
    def serves(composition: Composition) -> bool:
        """Whether the pages can run here: switched on, and every contract they call at hand
        (a module tested on its own composes without the others)."""
        return composition.settings.ui.enabled and all(c.name in composition.contracts for c in CALLED)

    def __init__(self, composition: Composition, ops: dict[str, OpsApi]) -> None:
        settings = composition.settings
        self.sessions = BrowserSessions(
            settings,
            composition.access_tokens,
            composition.revoked_sessions,
            group=composition.placement.group if composition.placement.is_split else None,
        )
        self.contracts = Contracts(
            identity=composition.client(IDENTITY),
            tasks=composition.client(TASKS),
            notifications=composition.client(NOTIFICATIONS),
            activity=composition.client(ACTIVITY),
            accounts=composition.client(ACCOUNTS),
        )
        self.state = {
            "ui_contracts": self.contracts,
            "ui_sessions": self.sessions,
            "ui_bell_seconds": settings.ui.bell_seconds,
            "ui_ops": ops,
        }

    def router(self) -> Router:
        sessions = self.sessions

        def refused(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
            """A page's own refusal (not an administrator, no such task, a missing CSRF token)."""
            title = "Not allowed" if exc.status_code == HTTP_403_FORBIDDEN else "Not found"
            return Template(
                template_name="error.html.j2",
                context={"title": title, "message": exc.detail, "viewer": None, "csrf": "", "path": ""},
                status_code=exc.status_code,
                media_type=MediaType.HTML,
            )

        def to_sign_in(request: Request[Any, Any, Any], _exc: NotAuthorizedException) -> Response[Any]:
            # The refresh cookie goes to /session only: renewal looks for it, and signs in without.
            return sessions.to_sign_in(request, renew=True)

        assets = create_static_files_router(
            path=STATIC_PATH,
            directories=[_static_dir()],
            opt=page_public("the pages' own scripts, styles and icons"),
            include_in_schema=False,
            send_as_attachment=False,
        )
        return Router(
            path="/",
            route_handlers=[*PAGES, *ACCOUNT, *CONSOLE, assets],
            middleware=[sessions.auth.middleware, sessions.csrf],
            exception_handlers={
                NotAuthorizedException: to_sign_in,
                PermissionDeniedException: refused,
                NotFoundException: refused,
            },
            include_in_schema=False,
            opt={
                **public("pages are guarded by the browser session cookie (app.composition.ui.session)"),
                CSP_OPT: UI_CSP,
            },
        )

    @staticmethod
    def template_config() -> TemplateConfig[JinjaTemplateEngine]:
        environment = Environment(
            loader=PackageLoader("app.composition.ui", "templates"),
            autoescape=select_autoescape(["html", "j2"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        return TemplateConfig(engine=JinjaTemplateEngine.from_environment(environment))


def _static_dir() -> Path:
    return Path(str(files("app.composition.ui") / "static"))
