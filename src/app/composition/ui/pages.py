"""The web UI's pages: a client of the contracts, never of a module's insides.

Every handler calls contracts through ``Contracts`` — the local services in the monolith,
the remote adapters in a split's gateway — so the same pages run in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY

from app.composition.ui.common import (
    Contracts,
    contracts_of,
    form_of,
    fragment,
    page,
    principal_of,
    sessions_of,
)
from app.composition.ui.forms import (
    COLUMNS,
    PRIORITIES,
    FormProblem,
    changes_of,
    draft_of,
    expected_version,
    field_errors,
    message_of,
    uuid_or_none,
)
from app.composition.ui.session import page_public, safe_next
from app.kernel.throttle import RateKind, throttled
from contracts import ContractError, InvalidInput, Principal, Throttled
from contracts.activity import ActivityQuery, TaskActivityNotFound
from contracts.identity import EmailAlreadyRegistered, InvalidCredentials
from contracts.notifications import NotificationQuery
from contracts.tasks import Task, TaskQuery, TaskStatus, VersionMismatch

__all__ = ("PAGES",)

BOARD_LIMIT = 100  # cards per column the board shows


# -- signing in and out -------------------------------------------------------------------


@get("/", opt=page_public("sends the browser to the board, which asks for a session"), sync_to_thread=False)
def home() -> Redirect:
    return Redirect("/board", status_code=303)


@get("/sign-in", opt=page_public("where a browser without a session signs in"))
async def sign_in_page(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Template:
    return await page(request, "sign_in.html.j2", title="Sign in", next=safe_next(next), errors={})


@post(
    "/sign-in",
    opt={**page_public("where a browser without a session signs in"), **throttled(RateKind.LOGIN)},
    status_code=HTTP_200_OK,
)
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await form_of(request)
    target = safe_next(form.get("next"))
    try:
        pair = await contracts_of(request.app.state).identity.log_in(
            email=form.get("email", ""), password=form.get("password", "")
        )
    except (InvalidCredentials, Throttled, InvalidInput) as error:
        return await page(
            request,
            "sign_in.html.j2",
            title="Sign in",
            next=target,
            email=form.get("email", ""),
            errors={"form": message_of(error)},
            status_code=error.status,
        )
    return sessions_of(request.app.state).begin(Redirect(target, status_code=303), pair)


@get("/sign-up", opt=page_public("where a new user makes an account"))
async def sign_up_page(request: Request[Any, Any, Any]) -> Template:
    return await page(request, "sign_up.html.j2", title="Create an account", errors={}, form={})


@post(
    "/sign-up",
    opt={**page_public("where a new user makes an account"), **throttled(RateKind.REGISTRATION)},
    status_code=HTTP_200_OK,
)
async def sign_up(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await form_of(request)
    identity = contracts_of(request.app.state).identity
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
            return sessions_of(request.app.state).begin(Redirect("/board", status_code=303), pair)
    return await page(
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
    sessions = sessions_of(request.app.state)
    if (refresh_token := sessions.refresh_token(request)) is not None:
        await contracts_of(request.app.state).identity.log_out(refresh_token=refresh_token)
    return sessions.end(Redirect("/sign-in", status_code=303))


@get(
    "/session/renew",
    opt=page_public("renews a lapsed session from its refresh cookie, or sends the browser to sign in"),
)
async def renew(request: Request[Any, Any, Any], next: FromQuery[str | None] = None) -> Response[Any]:
    sessions, target = sessions_of(request.app.state), safe_next(next)
    refresh_token = sessions.refresh_token(request)
    if refresh_token is not None:
        try:
            pair = await contracts_of(request.app.state).identity.refresh(refresh_token=refresh_token)
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
        assignee = principal.user_id if self.assignee == "me" else uuid_or_none(self.assignee)
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
        found = await contracts.tasks.list_tasks(principal, filters.query(principal, status))
        columns.append(Column(status=status, tasks=[t for t in found.items if filters.keeps(t)]))
    cards = [t for c in columns for t in c.tasks]
    people = sorted({t.owner_id for t in cards} | {t.assignee_id for t in cards if t.assignee_id})
    names = {p.id: p.display_name for p in await contracts.identity.get_users(people)} if people else {}
    return columns, names


@get("/board")
async def board(
    request: Request[Any, Any, Any],
    label: FromQuery[str] = "",
    priority: FromQuery[str] = "",
    assignee: FromQuery[str] = "",
    due: FromQuery[str] = "",
    q: FromQuery[str] = "",
) -> Template:
    filters = Filters(label=label.strip(), priority=priority, assignee=assignee, due=due, q=q.strip())
    principal = principal_of(request)
    columns, names = await _columns(contracts_of(request.app.state), principal, filters)
    return await page(
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
    form = await form_of(request)
    principal = principal_of(request)
    contracts = contracts_of(request.app.state)
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
    return await page(
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
async def move_task(request: Request[Any, Any, Any], task_id: FromPath[UUID]) -> Response[Any]:
    """A card moved to another column: by its button, the keyboard or a drop (htmx: the card)."""
    form = await form_of(request)
    principal = principal_of(request)
    contracts = contracts_of(request.app.state)
    try:
        await contracts.tasks.update_task(
            principal, task_id, changes_of(form, status_only=True), expected_version=expected_version(form)
        )
    except VersionMismatch:
        message = "This card changed since you loaded the board: reload to see it as it is now."
        return fragment("conflict.html.j2", status_code=HTTP_409_CONFLICT, message=message)
    except (ContractError, FormProblem) as error:
        text = message_of(error) if isinstance(error, ContractError) else str(error)
        return fragment("conflict.html.j2", status_code=HTTP_422_UNPROCESSABLE_ENTITY, message=text)
    if request.headers.get("hx-request"):
        return Response(content=b"", headers={"HX-Refresh": "true"})
    return Redirect(request.headers.get("referer") or "/board", status_code=303)


@get("/people")
async def people(
    request: Request[Any, Any, Any], q: FromQuery[str] = "", field: FromQuery[str] = "assignee_id"
) -> Template:
    """Who matches the name typed into an assignee picker (htmx: the choices)."""
    found = (
        (await contracts_of(request.app.state).identity.find_people(q.strip(), limit=8)).items
        if len(q.strip()) >= 2
        else []
    )
    return fragment("people.html.j2", people=found, q=q.strip(), field=field)


# -- a task -------------------------------------------------------------------------------


async def _task_page(
    request: Request[Any, Any, Any],
    task_id: FromPath[UUID],
    *,
    status_code: int = HTTP_200_OK,
    conflict: str | None = None,
    errors: dict[str, str] | None = None,
) -> Template:
    principal = principal_of(request)
    contracts = contracts_of(request.app.state)
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
    named = (uuid_or_none(str(e.data.get(k, ""))) for e in timeline for k in ("assignee_id", "owner_id"))
    ids |= {user_id for user_id in named if user_id is not None}
    names = {str(p.id): p.display_name for p in await contracts.identity.get_users(sorted(ids))}
    return await page(
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
async def task_page(request: Request[Any, Any, Any], task_id: FromPath[UUID]) -> Template:
    return await _task_page(request, task_id)


@post("/tasks/{task_id:uuid}", status_code=HTTP_200_OK)
async def edit_task(request: Request[Any, Any, Any], task_id: FromPath[UUID]) -> Response[Any]:
    form = await form_of(request)
    contracts = contracts_of(request.app.state)
    try:
        await contracts.tasks.update_task(
            principal_of(request), task_id, changes_of(form), expected_version=expected_version(form)
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
async def delete_task(request: Request[Any, Any, Any], task_id: FromPath[UUID]) -> Response[Any]:
    try:
        await contracts_of(request.app.state).tasks.delete_task(principal_of(request), task_id)
    except ContractError as error:
        return await _task_page(
            request, task_id, status_code=error.status, errors={"form": message_of(error)}
        )
    return Redirect("/board", status_code=303)


# -- notifications ------------------------------------------------------------------------


@get("/notifications")
async def inbox(request: Request[Any, Any, Any], cursor: FromQuery[str | None] = None) -> Template:
    found = await contracts_of(request.app.state).notifications.list_notifications(
        principal_of(request), NotificationQuery(limit=50, cursor=cursor)
    )
    return await page(request, "inbox.html.j2", title="Inbox", page=found)


@get("/notifications/bell")
async def bell(request: Request[Any, Any, Any]) -> Template:
    """The bell's unread count; an open page asks every ``ui.bell_seconds`` (htmx polling)."""
    count = await contracts_of(request.app.state).notifications.unread_count(principal_of(request))
    return fragment("bell.html.j2", unread=count.unread, bell_seconds=request.app.state["ui_bell_seconds"])


@post("/notifications/{notification_id:uuid}/read", status_code=HTTP_200_OK)
async def mark_read(request: Request[Any, Any, Any], notification_id: FromPath[UUID]) -> Redirect:
    await contracts_of(request.app.state).notifications.mark_read(principal_of(request), notification_id)
    return Redirect("/notifications", status_code=303)


@post("/notifications/read-all", status_code=HTTP_200_OK)
async def mark_all_read(request: Request[Any, Any, Any]) -> Redirect:
    await contracts_of(request.app.state).notifications.mark_all_read(principal_of(request))
    return Redirect("/notifications", status_code=303)


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
]
