"""The account pages: name, password, sessions, the user's data, and closing the account."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK
from litestar.utils.scope.state import ScopeState

from app.composition.ui.common import contracts_of, form_of, fragment, page, principal_of, sessions_of
from app.composition.ui.forms import field_errors, message_of, uuid_or_none
from app.kernel.security import after_revocation
from contracts import ContractError, InvalidInput, Throttled
from contracts.accounts import ClosureRequest, ClosureState

__all__ = ("ACCOUNT",)


@get("/account")
async def account(request: Request[Any, Any, Any], saved: FromQuery[str | None] = None) -> Template:
    return await page(request, "account.html.j2", title="Account", saved=saved, errors={})


async def _account_problem(request: Request[Any, Any, Any], errors: dict[str, str]) -> Template:
    return await page(request, "account.html.j2", title="Account", saved=None, errors=errors, status_code=422)


@post("/account/profile", status_code=HTTP_200_OK)
async def change_profile(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await form_of(request)
    try:
        await contracts_of(request.app.state).identity.change_profile(
            principal_of(request), display_name=form.get("display_name", "")
        )
    except InvalidInput as error:
        return await _account_problem(request, field_errors(error))
    return Redirect("/account?saved=name", status_code=303)


@post("/account/password", status_code=HTTP_200_OK)
async def change_password(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new password: every other session ends, this one goes on with a fresh pair of tokens."""
    form = await form_of(request)
    if len(form.get("new_password", "")) < 8:
        return await _account_problem(request, {"new_password": "needs at least 8 characters"})
    try:
        pair = await contracts_of(request.app.state).identity.change_password(
            principal_of(request), current=form.get("current_password", ""), new=form["new_password"]
        )
    except InvalidInput as error:
        return await _account_problem(request, field_errors(error))
    except Throttled as error:
        return await _account_problem(request, {"form": message_of(error)})
    return sessions_of(request.app.state).begin(Redirect("/account?saved=password", status_code=303), pair)


@post("/account/sign-out-everywhere", status_code=HTTP_200_OK)
async def sign_out_everywhere(request: Request[Any, Any, Any]) -> Response[Any]:
    await contracts_of(request.app.state).identity.log_out_everywhere(principal_of(request))
    return sessions_of(request.app.state).end(Redirect("/sign-in", status_code=303))


@get("/account/export")
async def export(request: Request[Any, Any, Any]) -> Response[Any]:
    """Everything Tessera holds about the user, as a JSON file to keep."""
    data = await contracts_of(request.app.state).accounts.export(principal_of(request))
    return Response(
        content=msgspec.json.format(msgspec.json.encode(data)),
        media_type=MediaType.JSON,
        headers={
            "Content-Disposition": 'attachment; filename="tessera-export.json"',
            "Cache-Control": "no-store",
        },
    )


@post("/account/close", status_code=HTTP_200_OK)
async def close_account(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await form_of(request)
    successor = uuid_or_none(form.get("successor_id", ""))
    if successor is None:
        return await _account_problem(request, {"successor_id": "choose who takes your open tasks over"})
    if form.get("confirm") != "yes":
        return await _account_problem(request, {"confirm": "tick the box to confirm"})
    try:
        closure = await contracts_of(request.app.state).accounts.close_account(
            principal_of(request), ClosureRequest(successor_id=successor)
        )
    except ContractError as error:
        return await _account_problem(request, {"successor_id": message_of(error)})
    return Redirect(f"/account/closure/{closure.id}", status_code=303)


_FOLLOW_CLOSURE = after_revocation(
    "a closing user's sessions are revoked at the closure's first step, and they still follow it "
    "to its end; the page shows them their own closure and nothing else"
)


@get("/account/closure/{closure_id:uuid}", opt=_FOLLOW_CLOSURE)
async def closure_page(request: Request[Any, Any, Any], closure_id: FromPath[UUID]) -> Response[Any]:
    """The closure's steps as they go; the page asks again every second until it has ended."""
    closure = await contracts_of(request.app.state).accounts.closure(principal_of(request), closure_id)
    ended = closure.state in (ClosureState.COMPLETED, ClosureState.COMPENSATED)
    context: dict[str, Any] = {
        "closure": closure,
        "ended": ended,
        "closed": closure.state == ClosureState.COMPLETED,
    }
    if request.headers.get("hx-request"):
        response: Response[Any] = fragment("closure_steps.html.j2", **context)
    else:
        response = Template(
            template_name="closure.html.j2",
            context={
                "title": "Closing your account",
                "viewer": None,
                "csrf": ScopeState.from_scope(request.scope).csrf_token,
                "path": request.url.path,
                **context,
            },
            media_type=MediaType.HTML,
        )
    if closure.state == ClosureState.COMPLETED:
        sessions_of(request.app.state).end(response)  # the account is gone: so is its session
    return response


ACCOUNT = [
    account,
    change_profile,
    change_password,
    sign_out_everywhere,
    export,
    close_account,
    closure_page,
]
