"""The web UI's pages: a client of the contracts, never of a module's insides.

Every handler calls contracts through ``Contracts`` — the local services in the monolith,
the remote adapters in a split's gateway — so the same pages run in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.utils.scope.state import ScopeState

from app.composition.ui.forms import (
    COLUMNS,
    PRIORITIES,
    FormProblem,
    changes_of,
    draft_of,
    expected_version,
    field_errors,
    message_of,
)
from app.composition.ui.session import CSRF_FIELD, BrowserSessions, page_public, safe_next
from app.kernel.security import after_revocation
from app.kernel.throttle import RateKind, throttled
from contracts import ContractError, InvalidInput, Principal, Throttled
from contracts.accounts import AccountsApi, ClosureRequest, ClosureState
from contracts.activity import ActivityApi, ActivityQuery, TaskActivityNotFound
from contracts.identity import AccountRecord, EmailAlreadyRegistered, IdentityApi, InvalidCredentials
from contracts.notifications import NotificationQuery, NotificationsApi
from contracts.tasks import Task, TaskQuery, TasksApi, TaskStatus, VersionMismatch

__all__ = ("PAGES", "Contracts")

BOARD_LIMIT = 100  # cards per column the board shows


@dataclass(frozen=True, slots=True)
class Contracts:
    """The contracts the pages call, as this process implements them."""

    identity: IdentityApi
    tasks: TasksApi
    notifications: NotificationsApi
    activity: ActivityApi
    accounts: AccountsApi


def _contracts(state: State) -> Contracts:
    found: Contracts = state["ui_contracts"]
    return found


def _sessions(state: State) -> BrowserSessions:
    found: BrowserSessions = state["ui_sessions"]
    return found


def _principal(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    assert isinstance(user, Principal), "the session middleware lets no page through without one"
    return user


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str) and k != CSRF_FIELD}


async def _page(
    request: Request[Any, Any, Any],
    name: str,
    *,
    title: str,
    status_code: int = HTTP_200_OK,
    viewer: AccountRecord | None = None,
    **context: Any,
) -> Template:
    """A full page (or, for an htmx request naming a fragment, just that fragment)."""
    contracts = _contracts(request.app.state)
    unread = 0
    if isinstance(request.scope.get("user"), Principal):
        principal = _principal(request)
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


def _fragment(name: str, *, status_code: int = HTTP_200_OK, **context: Any) -> Template:
    return Template(template_name=name, context=context, status_code=status_code, media_type=MediaType.HTML)


# -- signing in and out -------------------------------------------------------------------


@get("/", opt=page_public("sends the browser to the board, which asks for a session"), sync_to_thread=False)
def home() -> Redirect:
    return Redirect("/board", status_code=303)


@get("/sign-in", opt=page_public("where a browser without a session signs in"))
async def sign_in_page(request: Request[Any, Any, Any], next: str | None = None) -> Template:
    return await _page(request, "sign_in.html.j2", title="Sign in", next=safe_next(next), errors={})


@post(
    "/sign-in",
    opt={**page_public("where a browser without a session signs in"), **throttled(RateKind.LOGIN)},
    status_code=HTTP_200_OK,
)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    target = safe_next(form.get("next"))
    try:
        pair = await _contracts(request.app.state).identity.log_in(
            email=form.get("email", ""), password=form.get("password", "")
        )
    except (InvalidCredentials, Throttled, InvalidInput) as error:
        return await _page(
            request,
            "sign_in.html.j2",
            title="Sign in",
            next=target,
            email=form.get("email", ""),
            errors={"form": message_of(error)},
            status_code=error.status,
        )
    return _sessions(request.app.state).begin(Redirect(target, status_code=303), pair)


@get("/sign-up", opt=page_public("where a new user makes an account"))
async def sign_up_page(request: Request[Any, Any, Any]) -> Template:
    return await _page(request, "sign_up.html.j2", title="Create an account", errors={}, form={})


@post(
    "/sign-up",
    opt={**page_public("where a new user makes an account"), **throttled(RateKind.REGISTRATION)},
    status_code=HTTP_200_OK,
)
async def sign_up(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    identity = _contracts(request.app.state).identity
    errors = _sign_up_errors(form)
    if not errors:
        try:
            await identity.register(
                email=form["email"].strip(), password=form["password"], display_name=form["display_name"]
            )
            pair = await identity.log_in(email=form["email"].strip(), password=form["password"])
        except EmailAlreadyRegistered as error:
            errors = {"email": message_of(error)}
        except InvalidInput as error:
            errors = field_errors(error)
        except (Throttled, InvalidCredentials) as error:
            errors = {"form": message_of(error)}
        else:
            return _sessions(request.app.state).begin(Redirect("/board", status_code=303), pair)
    return await _page(
        request,
        "sign_up.html.j2",
        title="Create an account",
        errors=errors,
        form={k: v for k, v in form.items() if k != "password"},
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
    )


def _sign_up_errors(form: dict[str, str]) -> dict[str, str]:
    errors = {}
    if "@" not in form.get("email", ""):
        errors["email"] = "is not an e-mail address"
    if len(form.get("password", "")) < 8:
        errors["password"] = "needs at least 8 characters"  # noqa: S105  (a message, not a password)
    if not form.get("display_name", "").strip():
        errors["display_name"] = "is needed: it is how others find you"
    return errors


@post("/sign-out", status_code=HTTP_200_OK)
async def sign_out(request: Request[Any, Any, Any]) -> Response[Any]:
    sessions = _sessions(request.app.state)
    if (refresh_token := sessions.refresh_token(request)) is not None:
        await _contracts(request.app.state).identity.log_out(refresh_token=refresh_token)
    return sessions.end(Redirect("/sign-in", status_code=303))


@get(
    "/session/renew",
    opt=page_public("renews a lapsed session from its refresh cookie, or sends the browser to sign in"),
)
async def renew(request: Request[Any, Any, Any], next: str | None = None) -> Response[Any]:
    sessions, target = _sessions(request.app.state), safe_next(next)
    refresh_token = sessions.refresh_token(request)
    if refresh_token is not None:
        try:
            pair = await _contracts(request.app.state).identity.refresh(refresh_token=refresh_token)
        except ContractError:
            pass  # spent, expired or revoked: sign in again
        else:
            return sessions.begin(Redirect(target, status_code=303), pair)
    return sessions.end(Redirect(f"/sign-in?next={target}", status_code=303))


# -- the board ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    """The board's filters, as they stand in its URL."""

    label: str = ""
    priority: str = ""
    assignee: str = ""  # "", "me", "none" or a user id
    due: str = ""  # a date: due on or before it
    q: str = ""

    def query(self, principal: Principal, status: TaskStatus) -> TaskQuery:
        due_before = None
        if self.due:
            try:
                due_before = datetime.combine(datetime.fromisoformat(self.due).date(), time.max, tzinfo=UTC)
            except ValueError:
                due_before = None
        assignee = principal.user_id if self.assignee == "me" else _uuid(self.assignee)
        return TaskQuery(
            status=[status],
            label=self.label or None,
            title_contains=self.q or None,
            assignee_id=assignee,
            due_before=due_before,
            limit=BOARD_LIMIT,
        )

    def keeps(self, task: Task) -> bool:
        if self.priority and task.priority != self.priority:
            return False
        return not (self.assignee == "none" and task.assignee_id is not None)

    @property
    def active(self) -> bool:
        return any((self.label, self.priority, self.assignee, self.due, self.q))


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Column:
    status: TaskStatus
    tasks: list[Task]


async def _columns(
    contracts: Contracts, principal: Principal, filters: Filters
) -> tuple[list[Column], dict[UUID, str]]:
    """The board's columns, and the names of the people on its cards."""
    columns = []
    for status in COLUMNS:
        page = await contracts.tasks.list_tasks(principal, filters.query(principal, status))
        columns.append(Column(status=status, tasks=[t for t in page.items if filters.keeps(t)]))
    cards = [t for c in columns for t in c.tasks]
    people = sorted({t.owner_id for t in cards} | {t.assignee_id for t in cards if t.assignee_id})
    names = {p.id: p.display_name for p in await contracts.identity.get_users(people)} if people else {}
    return columns, names


@get("/board")
async def board(
    request: Request[Any, Any, Any],
    label: str = "",
    priority: str = "",
    assignee: str = "",
    due: str = "",
    q: str = "",
) -> Template:
    filters = Filters(label=label.strip(), priority=priority, assignee=assignee, due=due, q=q.strip())
    principal = _principal(request)
    columns, names = await _columns(_contracts(request.app.state), principal, filters)
    return await _page(
        request,
        "board.html.j2",
        title="Board",
        columns=columns,
        names=names,
        filters=filters,
        priorities=PRIORITIES,
        me=principal.user_id,
        errors={},
        form={},
    )


@post("/board/tasks", status_code=HTTP_200_OK)
async def create_task(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    principal = _principal(request)
    contracts = _contracts(request.app.state)
    try:
        await contracts.tasks.create_task(principal, draft_of(form), idempotency_key=form.get("key") or None)
    except FormProblem as problem:
        errors = problem.errors
    except InvalidInput as error:
        errors = field_errors(error)
    except ContractError as error:
        errors = {
            "assignee_id" if "assign" in error.code or "user" in error.code else "form": message_of(error)
        }
    else:
        return Redirect(request.headers.get("referer") or "/board", status_code=303)
    columns, names = await _columns(contracts, principal, Filters())
    return await _page(
        request,
        "board.html.j2",
        title="Board",
        columns=columns,
        names=names,
        filters=Filters(),
        priorities=PRIORITIES,
        me=principal.user_id,
        errors=errors,
        form=form,
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
    )


@post("/tasks/{task_id:uuid}/status", status_code=HTTP_200_OK)
async def move_task(request: Request[Any, Any, Any], task_id: UUID) -> Response[Any]:
    """A card moved to another column: by its button, the keyboard or a drop (htmx: the card)."""
    form = await _form(request)
    principal = _principal(request)
    contracts = _contracts(request.app.state)
    try:
        await contracts.tasks.update_task(
            principal, task_id, changes_of(form, status_only=True), expected_version=expected_version(form)
        )
    except VersionMismatch:
        message = "This card changed since you loaded the board: reload to see it as it is now."
        return _fragment("conflict.html.j2", status_code=HTTP_409_CONFLICT, message=message)
    except (ContractError, FormProblem) as error:
        text = message_of(error) if isinstance(error, ContractError) else str(error)
        return _fragment("conflict.html.j2", status_code=HTTP_422_UNPROCESSABLE_ENTITY, message=text)
    if request.headers.get("hx-request"):
        return Response(content=b"", headers={"HX-Refresh": "true"})
    return Redirect(request.headers.get("referer") or "/board", status_code=303)


@get("/people")
async def people(request: Request[Any, Any, Any], q: str = "", field: str = "assignee_id") -> Template:
    """Who matches the name typed into an assignee picker (htmx: the choices)."""
    found = (
        (await _contracts(request.app.state).identity.find_people(q.strip(), limit=8)).items
        if len(q.strip()) >= 2
        else []
    )
    return _fragment("people.html.j2", people=found, q=q.strip(), field=field)


# -- a task -------------------------------------------------------------------------------


async def _task_page(
    request: Request[Any, Any, Any],
    task_id: UUID,
    *,
    status_code: int = HTTP_200_OK,
    conflict: str | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    principal = _principal(request)
    contracts = _contracts(request.app.state)
    try:
        task = await contracts.tasks.get_task(principal, task_id)
    except ContractError:
        raise NotFoundException("No such task") from None
    try:
        timeline = (await contracts.activity.task_activity(principal, task_id, ActivityQuery(limit=50))).items
    except TaskActivityNotFound:
        timeline = []
    ids = {task.owner_id, *([task.assignee_id] if task.assignee_id else [])}
    ids |= {e.actor_id for e in timeline if e.actor_id}
    named = (_uuid(str(e.data.get(k, ""))) for e in timeline for k in ("assignee_id", "owner_id"))
    ids |= {user_id for user_id in named if user_id is not None}
    names = {str(p.id): p.display_name for p in await contracts.identity.get_users(sorted(ids))}
    return await _page(
        request,
        "task.html.j2",
        title=task.title,
        task=task,
        timeline=timeline,
        names=names,
        priorities=PRIORITIES,
        statuses=[s.value for s in TaskStatus],
        owner=task.owner_id == principal.user_id,
        conflict=conflict,
        errors=errors or {},
        status_code=status_code,
    )


@get("/tasks/{task_id:uuid}")
async def task_page(request: Request[Any, Any, Any], task_id: UUID) -> Template:
    return await _task_page(request, task_id)


@post("/tasks/{task_id:uuid}", status_code=HTTP_200_OK)
async def edit_task(request: Request[Any, Any, Any], task_id: UUID) -> Response[Any]:
    form = await _form(request)
    contracts = _contracts(request.app.state)
    try:
        await contracts.tasks.update_task(
            _principal(request), task_id, changes_of(form), expected_version=expected_version(form)
        )
    except VersionMismatch:
        conflict = (
            "Someone changed this task after you opened it, so your changes were not saved. "
            "Reload to see the task as it is now, then make your changes again."
        )
        return await _task_page(request, task_id, status_code=HTTP_409_CONFLICT, conflict=conflict)
    except FormProblem as problem:
        return await _task_page(request, task_id, status_code=422, errors=problem.errors)
    except InvalidInput as error:
        return await _task_page(request, task_id, status_code=422, errors=field_errors(error))
    except ContractError as error:
        return await _task_page(
            request, task_id, status_code=error.status, errors={"form": message_of(error)}
        )
    return Redirect(f"/tasks/{task_id}", status_code=303)


@post("/tasks/{task_id:uuid}/delete", status_code=HTTP_200_OK)
async def delete_task(request: Request[Any, Any, Any], task_id: UUID) -> Response[Any]:
    try:
        await _contracts(request.app.state).tasks.delete_task(_principal(request), task_id)
    except ContractError as error:
        return await _task_page(
            request, task_id, status_code=error.status, errors={"form": message_of(error)}
        )
    return Redirect("/board", status_code=303)


# -- notifications ------------------------------------------------------------------------


@get("/notifications")
async def inbox(request: Request[Any, Any, Any], cursor: str | None = None) -> Template:
    page = await _contracts(request.app.state).notifications.list_notifications(
        _principal(request), NotificationQuery(limit=50, cursor=cursor)
    )
    return await _page(request, "inbox.html.j2", title="Inbox", page=page)


@get("/notifications/bell")
async def bell(request: Request[Any, Any, Any]) -> Template:
    """The bell's unread count; an open page asks every ``ui.bell_seconds`` (htmx polling)."""
    count = await _contracts(request.app.state).notifications.unread_count(_principal(request))
    return _fragment("bell.html.j2", unread=count.unread, bell_seconds=request.app.state["ui_bell_seconds"])


@post("/notifications/{notification_id:uuid}/read", status_code=HTTP_200_OK)
async def mark_read(request: Request[Any, Any, Any], notification_id: UUID) -> Redirect:
    await _contracts(request.app.state).notifications.mark_read(_principal(request), notification_id)
    return Redirect("/notifications", status_code=303)


@post("/notifications/read-all", status_code=HTTP_200_OK)
async def mark_all_read(request: Request[Any, Any, Any]) -> Redirect:
    await _contracts(request.app.state).notifications.mark_all_read(_principal(request))
    return Redirect("/notifications", status_code=303)


# -- the account ---------------------------------------------------------------------------


@get("/account")
async def account(request: Request[Any, Any, Any], saved: str | None = None) -> Template:
    return await _page(request, "account.html.j2", title="Account", saved=saved, errors={})


async def _account_problem(request: Request[Any, Any, Any], errors: dict[str, str]) -> Template:
    return await _page(
        request, "account.html.j2", title="Account", saved=None, errors=errors, status_code=422
    )


@post("/account/profile", status_code=HTTP_200_OK)
async def change_profile(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    try:
        await _contracts(request.app.state).identity.change_profile(
            _principal(request), display_name=form.get("display_name", "")
        )
    except InvalidInput as error:
        return await _account_problem(request, field_errors(error))
    return Redirect("/account?saved=name", status_code=303)


@post("/account/password", status_code=HTTP_200_OK)
async def change_password(request: Request[Any, Any, Any]) -> Response[Any]:
    """A new password: every other session ends, this one goes on with a fresh pair of tokens."""
    form = await _form(request)
    if len(form.get("new_password", "")) < 8:
        return await _account_problem(request, {"new_password": "needs at least 8 characters"})
    try:
        pair = await _contracts(request.app.state).identity.change_password(
            _principal(request), current=form.get("current_password", ""), new=form["new_password"]
        )
    except InvalidInput as error:
        return await _account_problem(request, field_errors(error))
    except Throttled as error:
        return await _account_problem(request, {"form": message_of(error)})
    return _sessions(request.app.state).begin(Redirect("/account?saved=password", status_code=303), pair)


@post("/account/sign-out-everywhere", status_code=HTTP_200_OK)
async def sign_out_everywhere(request: Request[Any, Any, Any]) -> Response[Any]:
    await _contracts(request.app.state).identity.log_out_everywhere(_principal(request))
    return _sessions(request.app.state).end(Redirect("/sign-in", status_code=303))


@get("/account/export")
async def export(request: Request[Any, Any, Any]) -> Response[Any]:
    """Everything Tessera holds about the user, as a JSON file to keep."""
    data = await _contracts(request.app.state).accounts.export(_principal(request))
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
    form = await _form(request)
    successor = _uuid(form.get("successor_id", ""))
    if successor is None:
        return await _account_problem(request, {"successor_id": "choose who takes your open tasks over"})
    if form.get("confirm") != "yes":
        return await _account_problem(request, {"confirm": "tick the box to confirm"})
    try:
        closure = await _contracts(request.app.state).accounts.close_account(
            _principal(request), ClosureRequest(successor_id=successor)
        )
    except ContractError as error:
        return await _account_problem(request, {"successor_id": message_of(error)})
    return Redirect(f"/account/closure/{closure.id}", status_code=303)


_FOLLOW_CLOSURE = after_revocation(
    "a closing user's sessions are revoked at the closure's first step, and they still follow it "
    "to its end; the page shows them their own closure and nothing else"
)


@get("/account/closure/{closure_id:uuid}", opt=_FOLLOW_CLOSURE)
async def closure_page(request: Request[Any, Any, Any], closure_id: UUID) -> Response[Any]:
    """The closure's steps as they go; the page asks again every second until it has ended."""
    closure = await _contracts(request.app.state).accounts.closure(_principal(request), closure_id)
    ended = closure.state in (ClosureState.COMPLETED, ClosureState.COMPENSATED)
    context: dict[str, Any] = {
        "closure": closure,
        "ended": ended,
        "closed": closure.state == ClosureState.COMPLETED,
    }
    if request.headers.get("hx-request"):
        response: Response[Any] = _fragment("closure_steps.html.j2", **context)
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
        _sessions(request.app.state).end(response)  # the account is gone: so is its session
    return response


PAGES = [
    home,
    sign_in_page,
    sign_in,
    sign_up_page,
    sign_up,
    sign_out,
    renew,
    board,
    create_task,
    move_task,
    people,
    task_page,
    edit_task,
    delete_task,
    inbox,
    bell,
    mark_read,
    mark_all_read,
    account,
    change_profile,
    change_password,
    sign_out_everywhere,
    export,
    close_account,
    closure_page,
]
