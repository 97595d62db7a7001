"""Identity's public REST API: registration, tokens, profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.kernel.module import API_PREFIX
from app.kernel.problems import problem_responses
from app.kernel.security import public
from app.kernel.throttle import RateKind, throttled
from contracts import DependencyUnavailable, Principal, Throttled, refuse_control_characters
from contracts.identity import (
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidRefreshToken,
    NotPermittedOnUser,
    UserNotFound,
)
from modules.identity.domain import (
    EMAIL_PATTERN,
    TokenPair,
    User,
)
from modules.identity.service import IdentityService

__all__ = ("AuthController", "UsersController")

_NO_STORE = {"Cache-Control": "no-store"}


DisplayName = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=DISPLAY_NAME_MAX, pattern=r"\S", description="a name that is not blank"
    ),
]


class Registration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[
        str, msgspec.Meta(max_length=EMAIL_MAX, pattern=EMAIL_PATTERN, description="an e-mail address")
    ]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
    display_name: DisplayName

    def __post_init__(self) -> None:  # msgspec answers its ValueError as invalid input
        refuse_control_characters(self.email, field="email")
        refuse_control_characters(self.display_name, field="display_name")


class Credentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=EMAIL_MAX)]
    password: Annotated[str, msgspec.Meta(max_length=128)]


class RefreshTokenBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=256)]


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """A user as they see themselves."""

    id: UUID
    email: str
    display_name: str
    active: bool
    is_admin: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(
            id=user.id,
            email=user.email,
            display_name=user.display_name,
            active=user.active,
            is_admin=user.is_admin,
            created_at=user.created_at,
        )


class PublicProfile(msgspec.Struct, frozen=True, kw_only=True):
    """A user as anyone signed in may see them."""

    id: UUID
    display_name: str


class UsersController(Controller):
    path = "/users"
    tags = ("users",)

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        opt={**public("registration is how an account comes to exist"), **throttled(RateKind.REGISTRATION)},
        responses=problem_responses(EmailAlreadyRegistered, 422, Throttled),
        summary="Register a user",
    )
    async def register(
        self, data: JSONBody[Registration], identity: NamedDependency[IdentityService]
    ) -> Response[Account]:
        user = await identity.register(
            email=data.email, password=data.password, display_name=data.display_name
        )
        return Response(
            Account.of(user),
            status_code=HTTP_201_CREATED,
            headers={"Location": f"{API_PREFIX}/users/{user.id}"},
        )

    @get("/me", responses=problem_responses(401), summary="The signed-in user's account")
    async def me(
        self, principal: NamedDependency[Principal], identity: NamedDependency[IdentityService]
    ) -> Account:
        return Account.of(await identity.account(principal.user_id))

    @get(
        "/{user_id:uuid}",
        responses=problem_responses(401, UserNotFound),
        summary="A user's public profile",
    )
    async def profile(
        self, user_id: FromPath[UUID], identity: NamedDependency[IdentityService]
    ) -> PublicProfile:
        found = await identity.get_user(user_id)
        return PublicProfile(id=found.id, display_name=found.display_name)

    @post(
        "/{user_id:uuid}/deactivate",
        status_code=HTTP_200_OK,
        responses=problem_responses(401, NotPermittedOnUser, UserNotFound),
        summary="Deactivate a user (an administrator, or the user themself); their tasks are unassigned",
    )
    async def deactivate(
        self,
        user_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
    ) -> Account:
        return Account.of(await identity.deactivate(principal, user_id))


class AuthController(Controller):
    path = "/auth"
    tags = ("auth",)

    @post(
        "/token",
        status_code=HTTP_200_OK,
        opt={**public("this is where a user without a token gets one"), **throttled(RateKind.LOGIN)},
        responses=problem_responses(InvalidCredentials, 422, Throttled, DependencyUnavailable),
        summary="Log in: exchange e-mail and password for tokens",
    )
    async def token(
        self, data: JSONBody[Credentials], identity: NamedDependency[IdentityService]
    ) -> Response[TokenPair]:
        pair = await identity.log_in(email=data.email, password=data.password)
        return Response(pair, headers=_NO_STORE)

    @post(
        "/refresh",
        status_code=HTTP_200_OK,
        opt=public("the refresh token in the body is the credential"),
        responses=problem_responses(InvalidRefreshToken, 422),
        summary="Rotate a refresh token for a new token pair",
    )
    async def refresh(
        self, data: JSONBody[RefreshTokenBody], identity: NamedDependency[IdentityService]
    ) -> Response[TokenPair]:
        pair = await identity.refresh(refresh_token=data.refresh_token)
        return Response(pair, headers=_NO_STORE)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        opt=public("the refresh token in the body is the credential"),
        responses=problem_responses(422),
        summary="Log out: revoke the refresh token and every token rotated from it",
    )
    async def logout(
        self, data: JSONBody[RefreshTokenBody], identity: NamedDependency[IdentityService]
    ) -> None:
        await identity.log_out(refresh_token=data.refresh_token)
