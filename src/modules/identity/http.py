"""Identity's public REST API: registration, tokens, profiles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from app.kernel.module import API_PREFIX
from app.kernel.problems import problem_responses
from app.kernel.security import public
from app.kernel.throttle import RateKind, throttled
from contracts import (
    NO_CONTROL_CHARACTERS,
    NOT_BLANK,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    DependencyUnavailable,
    Principal,
    Throttled,
    refuse_control_characters,
)
from contracts.identity import (
    DISPLAY_NAME_MAX,
    EMAIL_MAX,
    AccountRecord,
    EmailAlreadyRegistered,
    InvalidCredentials,
    InvalidRefreshToken,
    NotPermittedOnUser,
    TokenPair,
    UserNotFound,
)
from modules.identity.domain import EMAIL_PATTERN, User
from modules.identity.service import IdentityService

__all__ = ("AdminUsersController", "AuthController", "UsersController")

_NO_STORE = {"Cache-Control": "no-store"}


DisplayName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=DISPLAY_NAME_MAX,
        pattern=NOT_BLANK,
        description="a name that is not blank, without control characters",
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


class ProfileChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    display_name: DisplayName

    def __post_init__(self) -> None:
        refuse_control_characters(self.display_name, field="display_name")


class PasswordChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=128)]
    new_password: Annotated[str, msgspec.Meta(min_length=8, max_length=128)]


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
    def of(cls, user: User | AccountRecord) -> Account:
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


class PeoplePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PublicProfile]
    next_cursor: str | None


class AccountPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Account]
    next_cursor: str | None


_CURSOR = Annotated[
    str | None, QueryParameter(max_length=512, required=False, description="next_cursor of the page before")
]
_LIMIT = Annotated[int, QueryParameter(ge=1, le=PAGE_LIMIT_MAX, description="items per page")]


class UsersController(Controller):
    path = "/users"
    tags = ("users",)

    @get(
        "/",
        opt=throttled(RateKind.USER_SEARCH),
        responses=problem_responses(401, 422, Throttled),
        summary="Find people to give work to: active users whose display name holds q (any case)",
    )
    async def find_people(
        self,
        identity: NamedDependency[IdentityService],
        q: Annotated[
            str,
            QueryParameter(
                min_length=2,
                max_length=DISPLAY_NAME_MAX,
                pattern=NO_CONTROL_CHARACTERS,
                description="part of a display name, without control characters",
            ),
        ],
        limit: _LIMIT = PAGE_LIMIT_DEFAULT,
        cursor: _CURSOR = None,
    ) -> PeoplePage:
        found = await identity.find_people(q, limit=limit, cursor=cursor)
        return PeoplePage(
            items=[PublicProfile(id=u.id, display_name=u.display_name) for u in found.items],
            next_cursor=found.next_cursor,
        )

    @post(
        "/",
        status_code=HTTP_201_CREATED,
        opt={**public("registration is how an account comes to exist"), **throttled(RateKind.REGISTRATION)},
        responses=problem_responses(EmailAlreadyRegistered, 422, Throttled),
        response_headers=[
            ResponseHeader(name="Location", documentation_only=True, description="Where the new user lives")
        ],
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

    @patch("/me", responses=problem_responses(401, 422), summary="Change your display name")
    async def change_profile(
        self,
        data: JSONBody[ProfileChanges],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
    ) -> Account:
        return Account.of(await identity.change_profile(principal, display_name=data.display_name))

    @post(
        "/me/password",
        status_code=HTTP_200_OK,
        responses=problem_responses(401, 422, Throttled),
        summary="Change your password: every other session ends; you get a fresh pair of tokens",
    )
    async def change_password(
        self,
        data: JSONBody[PasswordChange],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
    ) -> Response[TokenPair]:
        pair = await identity.change_password(principal, current=data.current_password, new=data.new_password)
        return Response(pair, headers=_NO_STORE)

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

    @post(
        "/{user_id:uuid}/reactivate",
        status_code=HTTP_200_OK,
        responses=problem_responses(401, NotPermittedOnUser, UserNotFound),
        summary="Reactivate a deactivated user (an administrator); they sign in afresh",
    )
    async def reactivate(
        self,
        user_id: FromPath[UUID],
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
    ) -> Account:
        return Account.of(await identity.reactivate(principal, user_id))


class AdminUsersController(Controller):
    path = "/admin/users"
    tags = ("admin",)

    @get(
        "/",
        responses=problem_responses(401, 422, NotPermittedOnUser),
        summary="Every account with every field, oldest first (an administrator)",
    )
    async def list_accounts(
        self,
        principal: NamedDependency[Principal],
        identity: NamedDependency[IdentityService],
        active: Annotated[
            bool | None, QueryParameter(required=False, description="only active (or inactive) accounts")
        ] = None,
        limit: _LIMIT = PAGE_LIMIT_DEFAULT,
        cursor: _CURSOR = None,
    ) -> AccountPage:
        found, next_cursor = await identity.accounts_page(
            principal, active=active, limit=limit, cursor=cursor
        )
        return AccountPage(items=[Account.of(u) for u in found], next_cursor=next_cursor)


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

    @post(
        "/logout-all",
        status_code=HTTP_204_NO_CONTENT,
        responses=problem_responses(401),
        summary="Sign out everywhere: refresh tokens revoked, access tokens refused within a second",
    )
    async def logout_all(
        self, principal: NamedDependency[Principal], identity: NamedDependency[IdentityService]
    ) -> None:
        await identity.log_out_everywhere(principal)
