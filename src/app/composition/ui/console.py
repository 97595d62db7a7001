"""The ops console: the module map, backlogs, breakers, sagas and projections (administrators).

It asks every process of the topology what it runs (``OpsApi``: this process directly, every
other group through the remote adapter) and refreshes itself every two seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from litestar import Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK
from litestar.utils.scope.state import ScopeState

from app.composition.ops import GroupOps, OpsApi, SagaRunOps
from app.composition.ui.common import contracts_of, form_of, fragment, page, principal_of
from contracts import ContractError
from contracts.identity import NotPermittedOnUser

__all__ = ("CONSOLE", "GroupView")

REFRESH_SECONDS = 2


@dataclass(frozen=True, slots=True)
class GroupView:
    """One group on the console: its snapshot, or why it could not be had."""

    name: str
    url: str | None
    snapshot: GroupOps | None
    problem: str | None
    expected_modules: list[str]


def _groups(request: Request[Any, Any, Any]) -> dict[str, OpsApi]:
    found: dict[str, OpsApi] = request.app.state["ui_ops"]
    return found


async def _administrator(request: Request[Any, Any, Any]) -> None:
    try:
        await contracts_of(request.app.state).identity.require_administrator(principal_of(request).user_id)
    except NotPermittedOnUser:
        raise PermissionDeniedException("The ops console is for administrators.") from None


async def _views(
    request: Request[Any, Any, Any], sagas: str | None
) -> tuple[list[GroupView], list[tuple[str, SagaRunOps]]]:
    groups = _groups(request)
    placement = request.app.state["composition"].placement
    answers = await asyncio.gather(*(ops.snapshot() for ops in groups.values()), return_exceptions=True)
    runs = await asyncio.gather(*(ops.saga_runs(sagas) for ops in groups.values()), return_exceptions=True)
    views = []
    for (name, _ops), answer in zip(groups.items(), answers, strict=True):
        peer = next((p for p in placement.peers if p.name == name), None)
        expected = sorted(m for m, g in placement.remote.items() if g.name == name)
        if isinstance(answer, BaseException):
            problem = answer.detail if isinstance(answer, ContractError) else type(answer).__name__
            views.append(GroupView(name, peer.url if peer else None, None, problem, expected))
        else:
            views.append(GroupView(name, peer.url if peer else None, answer, None, expected))
    found = [
        (name, run)
        for name, batch in zip(groups, runs, strict=True)
        if not isinstance(batch, BaseException)
        for run in batch
    ]
    return views, sorted(found, key=lambda pair: pair[1].updated_at, reverse=True)[:20]


SAGA_STATES = ("running", "compensating", "stuck", "completed", "compensated")


@get("/ops")
async def console(request: Request[Any, Any, Any], sagas: FromQuery[str | None] = None) -> Template:
    await _administrator(request)
    sagas = sagas if sagas in SAGA_STATES else None
    groups, runs = await _views(request, sagas)
    return await page(
        request,
        "ops.html.j2",
        title="Ops console",
        groups=groups,
        runs=runs,
        refresh=REFRESH_SECONDS,
        sagas=sagas,
        saga_states=SAGA_STATES,
    )


@get("/ops/panel")
async def panel(request: Request[Any, Any, Any], sagas: FromQuery[str | None] = None) -> Template:
    """The console's body, which the page asks for again every two seconds."""
    await _administrator(request)
    sagas = sagas if sagas in SAGA_STATES else None
    groups, runs = await _views(request, sagas)
    return fragment(
        "ops_panel.html.j2",
        groups=groups,
        runs=runs,
        refresh=REFRESH_SECONDS,
        csrf=ScopeState.from_scope(request.scope).csrf_token,
        sagas=sagas,
        saga_states=SAGA_STATES,
    )


@post("/ops/sagas/{run_id:uuid}/retry", status_code=HTTP_200_OK)
async def retry_saga(request: Request[Any, Any, Any], run_id: FromPath[UUID]) -> Response[Any]:
    await _administrator(request)
    ops = _groups(request).get((await form_of(request)).get("group", ""))
    if ops is not None:
        with contextlib.suppress(ContractError):  # the console shows the run as it stands
            await ops.retry_saga(run_id)
    return Redirect("/ops", status_code=303)


@post("/ops/projections/rebuild", status_code=HTTP_200_OK)
async def rebuild_projection(request: Request[Any, Any, Any]) -> Response[Any]:
    await _administrator(request)
    form = await form_of(request)
    ops = _groups(request).get(form.get("group", ""))
    if ops is not None:
        with contextlib.suppress(ContractError):  # the console shows the projection as it stands
            await ops.rebuild_projection(form.get("module", ""), form.get("name", ""))
    return Redirect("/ops", status_code=303)


CONSOLE = [console, panel, retry_saga, rebuild_projection]
