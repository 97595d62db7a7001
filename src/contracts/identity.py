"""The identity contract: who the users are, as other modules may see them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import (
    AwareDateTime,
    Contract,
    ContractError,
    IntegrationEvent,
    NotPermitted,
    Principal,
    Throttled,
    idempotent,
)

__all__ = (
    "DISPLAY_NAME_MAX",
    "EMAIL_MAX",
    "ERASED_DISPLAY_NAME",
    "IDENTITY",
    "AccountClosed",
    "AccountClosing",
    "AccountNotClosing",
    "AccountErased",
    "AccountRecord",
    "AdministratorGranted",
    "EmailAlreadyRegistered",
    "IdentityApi",
    "InvalidCredentials",
    "InvalidRefreshToken",
    "NotPermittedOnUser",
    "PeoplePage",
    "TokenPair",
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
# What others see of a closed account, in identity and in every copy made of its name.
ERASED_DISPLAY_NAME = "Former user"


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


class AccountClosing(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An account's closure state (contract 1.5): ``closing_since`` None once reopened."""

    user_id: UUID
    closing_since: datetime | None
    erased: bool


class AccountRecord(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Everything identity holds about a user but their credentials (contract 1.5): for their
    own data export, never for other users."""

    id: UUID
    email: str
    display_name: str
    active: bool
    is_admin: bool
    created_at: datetime


class TokenPair(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A signed-in session (in the contract since 1.6): a short-lived access token and the
    refresh token that renews it."""

    access_token: str
    expires_in: int
    refresh_token: str
    token_type: str = "Bearer"  # noqa: S105  (the OAuth token type, not a secret)


class PeoplePage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Active users whose display name holds the text asked for (contract 1.6), by name."""

    items: list[UserProfile]
    next_cursor: str | None


class AccountErased(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What erasing an account did (contract 1.5)."""

    user_id: UUID
    erased_at: datetime
    redacted_events: int


class UserNotFound(ContractError):
    code = "identity.user_not_found"
    status = 404
    title = "No such user"


class AccountNotClosing(ContractError):
    """Only an account marked closing is erased (contract 1.5): one reopened meanwhile is kept."""

    code = "identity.account_not_closing"
    status = 409
    title = "The account is not being closed"


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
    async def account_record(self, user_id: UUID) -> AccountRecord:
        """What identity holds about the user (contract 1.5), for their data export; UserNotFound."""
        ...

    @idempotent
    async def close_account(self, user_id: UUID, step_key: str) -> AccountClosing:
        """Mark the account *closing* (contract 1.5): no sign-in, no refresh, its access tokens void.

        Closing a closing account changes nothing. A closing user is not active to other
        modules. Raises UserNotFound.
        """
        ...

    @idempotent
    async def reopen_account(self, user_id: UUID, step_key: str) -> AccountClosing:
        """Undo :meth:`close_account` (contract 1.5); the user signs in afresh. Erased: nothing to do."""
        ...

    @idempotent
    async def erase_account(self, user_id: UUID, closed_by: UUID, step_key: str) -> AccountErased:
        """Erase the account's personal data for good (contract 1.5).

        The e-mail and display name are tombstoned, every token revoked, and the user's rows
        still kept in identity's outbox redacted; publishes AccountClosed once. Raises
        AccountNotClosing unless close_account marked it first (and nobody reopened it since).
        """
        ...

    # -- a user's own account (contract 1.6: the web UI calls these) -----------------------

    async def register(self, *, email: str, password: str, display_name: str) -> AccountRecord:
        """A new account; raises EmailAlreadyRegistered when the e-mail is taken."""
        ...

    async def log_in(self, *, email: str, password: str) -> TokenPair:
        """A new session; unknown e-mail and wrong password both raise InvalidCredentials, and
        too many failures on one account raise Throttled."""
        ...

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        """Rotate a refresh token; a spent, expired or revoked one raises InvalidRefreshToken."""
        ...

    async def log_out(self, *, refresh_token: str) -> None:
        """End the refresh token's session; an unknown token is ignored."""
        ...

    @idempotent
    async def find_people(self, text: str, *, limit: int = 20, cursor: str | None = None) -> PeoplePage:
        """Active users whose display name holds ``text`` (any case): whom work can be given to."""
        ...

    async def change_profile(self, principal: Principal, *, display_name: str) -> AccountRecord:
        """Change what others see of the principal."""
        ...

    async def change_password(self, principal: Principal, *, current: str, new: str) -> TokenPair:
        """A new password: every other session ends, the caller gets a fresh session. A wrong
        ``current`` raises InvalidInput naming ``current_password``."""
        ...

    async def log_out_everywhere(self, principal: Principal) -> None:
        """End every session of the principal: their access tokens stop counting within a poll."""
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


class AccountClosed(IntegrationEvent, frozen=True, kw_only=True, tag="identity.AccountClosed.v1"):
    """The account was closed and its personal data erased (contract 1.5); ``closed_by`` asked."""

    key_field = "user_id"

    user_id: UUID
    closed_by: UUID


IDENTITY: Contract[IdentityApi] = Contract(
    name="identity",
    version="1.6",  # 1.5: close_account, reopen_account, erase_account, AccountClosed;
    # 1.6: register, log_in, refresh, log_out, find_people, change_profile, change_password,
    # log_out_everywhere (the web UI calls them)
    api=IdentityApi,
    errors=(
        AccountNotClosing,
        UserNotFound,
        UserInactive,
        EmailAlreadyRegistered,
        InvalidCredentials,
        InvalidRefreshToken,
        NotPermittedOnUser,
        Throttled,
    ),
    events=(
        UserRegistered,
        UserDeactivated,
        UserProfileChanged,
        UserReactivated,
        AdministratorGranted,
        AccountClosed,
    ),
)
