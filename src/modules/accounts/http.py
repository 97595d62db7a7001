"""The accounts REST API: close an account (and follow the closure), export one's data."""

from __future__ import annotations

from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from app.kernel.module import API_PREFIX
from app.kernel.problems import problem_responses
from app.kernel.security import after_revocation
from contracts import Principal
from contracts.accounts import (
    AccountExport,
    Closure,
    ClosureNotFound,
    ClosureRequest,
    NotPermittedOnAccount,
    SuccessorIsTheUser,
)
from modules.accounts.service import AccountsService

__all__ = ("AccountController",)

_LOCATION = ResponseHeader(
    name="Location", documentation_only=True, description="Where the closure's progress can be followed"
)


class AccountController(Controller):
    path = "/account"
    tags = ("accounts",)

    @post(
        "/closure",
        status_code=HTTP_202_ACCEPTED,
        responses=problem_responses(401, 422, NotPermittedOnAccount, SuccessorIsTheUser),
        response_headers=[_LOCATION],
        summary="Close your account (an administrator: anyone's), handing your open tasks to a successor",
    )
    async def close(
        self,
        data: JSONBody[ClosureRequest],
        principal: NamedDependency[Principal],
        accounts: NamedDependency[AccountsService],
    ) -> Response[Closure]:
        closure = await accounts.close_account(principal, data)
        return Response(
            closure,
            status_code=HTTP_202_ACCEPTED,
            headers={"Location": f"{API_PREFIX}/account/closure/{closure.id}"},
        )

    @get(
        "/closure/{closure_id:uuid}",
        responses=problem_responses(401, ClosureNotFound),
        summary="An account closure's progress (an administrator, or the user it closes)",
        opt=after_revocation(
            "the closing user's sessions are revoked at the closure's first step, and they still "
            "follow it to its end; the handler shows them their own closure and nothing else"
        ),
    )
    async def closure(
        self,
        closure_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        accounts: NamedDependency[AccountsService],
    ) -> Closure:
        return await accounts.closure(principal, closure_id)

    @get("/export", responses=problem_responses(401), summary="Everything Tessera holds about you, as JSON")
    async def export(
        self, principal: NamedDependency[Principal], accounts: NamedDependency[AccountsService]
    ) -> AccountExport:
        return await accounts.export(principal)
