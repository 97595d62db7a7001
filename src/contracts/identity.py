"""The identity contract: who the users are, as other modules may see them."""

from __future__ import annotations

from typing import Protocol, runtime_checkable
from uuid import UUID

import msgspec

from contracts._base import Contract, ContractError, idempotent

__all__ = (
    "IDENTITY",
    "IdentityApi",
    "UserInactive",
    "UserNotFound",
    "UserProfile",
)


class UserProfile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What another module may know of a user: no e-mail, no credentials."""

    id: UUID
    display_name: str
    active: bool


class UserNotFound(ContractError):
    code = "identity.user_not_found"
    status = 404
    title = "No such user"


class UserInactive(ContractError):
    code = "identity.user_inactive"
    status = 422
    title = "The user is deactivated"


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


IDENTITY: Contract[IdentityApi] = Contract(
    name="identity",
    version="1.0",
    api=IdentityApi,
    errors=(UserNotFound, UserInactive),
)
