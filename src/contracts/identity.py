"""The identity contract: who the users are, as other modules may see them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import AwareDateTime, Contract, ContractError, IntegrationEvent, NotPermitted, idempotent

__all__ = (
    "DISPLAY_NAME_MAX",
    "EMAIL_MAX",
    "IDENTITY",
    "AdministratorGranted",
    "EmailAlreadyRegistered",
    "IdentityApi",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "NotPermittedOnUser",
    "SessionRevocation",
    "UserInactive",
    "UserDeactivated",
    "UserNotFound",
    "UserProfile",
    "UserProfileChanged",
    "UserReactivated",
    "UserRegistered",
)


# An account's fields, as the decoders, the OpenAPI document and the tables see them.
EMAIL_MAX = 254  # RFC 5321's path limit
DISPLAY_NAME_MAX = 100


class UserProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What another module may know of a user: no e-mail, no credentials."""

    id: UUID
    display_name: str
    active: bool


class SessionRevocation(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A user's access tokens of an epoch below ``epoch`` stopped counting at ``revoked_at``."""

    user_id: UUID
    epoch: int
    revoked_at: datetime


class UserNotFound(ContractError):
    code = "identity.user_not_found"
    status = 404
    title = "No such user"


class UserInactive(ContractError):
    code = "identity.user_inactive"
    status = 422
    title = "The user is deactivated"


class EmailAlreadyRegistered(ContractError):
    code = "identity.email_taken"
    status = 409
    title = "That e-mail address is already registered"


class InvalidCredentials(ContractError):
    code = "identity.invalid_credentials"
    status = 401
    title = "Unknown e-mail address or wrong password"


class InvalidRefreshToken(ContractError):
    code = "identity.invalid_refresh_token"
    status = 401
    title = "The refresh token is not valid"


class NotPermittedOnUser(NotPermitted):
    code = "identity.not_permitted"
    title = "Only an administrator or the user themself may do that"


@runtime_checkable
class IdentityApi(Protocol):
    """What the identity module answers for other modules."""

    @idempotent
    async def get_user(self, user_id: UUID) -> UserProfile:
        """One user's profile; raises UserNotFound."""
        ...

    @idempotent
    async def get_users(self, user_ids: list[UUID]) -> list[UserProfile]:
        """The profiles of those ids that exist, in the order asked; unknown ids are left out."""
        ...

    @idempotent
    async def require_active_user(self, user_id: UUID) -> UserProfile:
        """The profile of a user that exists and is active; raises UserNotFound or UserInactive."""
        ...

    @idempotent
    async def require_administrator(self, user_id: UUID) -> UserProfile:
        """The profile of an active administrator; raises NotPermittedOnUser otherwise (contract 1.4)."""
        ...

    @idempotent
    async def session_revocations(self, since: AwareDateTime) -> list[SessionRevocation]:
        """Users whose earlier access tokens were voided after ``since``, oldest first.

        Every process that checks access tokens asks this every moment, and refuses a token
        whose epoch is below its user's.
        """
        ...


# -- events ----------------------------------------------------------------------------


class UserRegistered(IntegrationEvent, frozen=True, kw_only=True, tag="identity.UserRegistered.v1"):
    key_field = "user_id"

    user_id: UUID
    display_name: str
    registered_at: datetime


class UserDeactivated(IntegrationEvent, frozen=True, kw_only=True, tag="identity.UserDeactivated.v1"):
    """The user can no longer sign in or take work; other modules let go of them."""

    key_field = "user_id"

    user_id: UUID
    deactivated_by: UUID


class UserProfileChanged(IntegrationEvent, frozen=True, kw_only=True, tag="identity.UserProfileChanged.v1"):
    """The user changed what others see of them; copies and read models follow."""

    key_field = "user_id"

    user_id: UUID
    display_name: str


class UserReactivated(IntegrationEvent, frozen=True, kw_only=True, tag="identity.UserReactivated.v1"):
    """An administrator gave a deactivated user their account back; they may sign in again."""

    key_field = "user_id"

    user_id: UUID
    reactivated_by: UUID


class AdministratorGranted(
    IntegrationEvent, frozen=True, kw_only=True, tag="identity.AdministratorGranted.v1"
):
    """The user became an administrator (contract 1.4). ``granted_by`` None: the command line."""

    key_field = "user_id"

    user_id: UUID
    granted_by: UUID | None


IDENTITY: Contract[IdentityApi] = Contract(
    name="identity",
    version="1.4",  # 1.4: require_administrator, AdministratorGranted
    api=IdentityApi,
    errors=(
        UserNotFound,
        UserInactive,
        EmailAlreadyRegistered,
        InvalidCredentials,
        InvalidRefreshToken,
        NotPermittedOnUser,
    ),
    events=(UserRegistered, UserDeactivated, UserProfileChanged, UserReactivated, AdministratorGranted),
)
