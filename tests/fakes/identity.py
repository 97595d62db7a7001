"""An in-memory IdentityApi for the tests of modules that consume identity.

It passes the same conformance suite as the real module, so a consumer tested against
it is tested against identity's promise, not against a guess.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

import msgspec

from app.kernel.clock import utcnow
from contracts import FieldError, InvalidInput, Principal
from contracts.identity import (
    ERASED_DISPLAY_NAME,
    AccountClosing,
    AccountErased,
    AccountNotClosing,
    AccountRecord,
    EmailAlreadyRegistered,
    IdentityApi,
    InvalidCredentials,
    InvalidRefreshToken,
    NotPermittedOnUser,
    PeoplePage,
    SessionRevocation,
    TokenPair,
    UserInactive,
    UserNotFound,
    UserProfile,
)

__all__ = ("FakeIdentity",)


class FakeIdentity(IdentityApi):
    def __init__(self) -> None:
        self._profiles: dict[UUID, UserProfile] = {}
        self._revocations: dict[UUID, SessionRevocation] = {}
        self._administrators: set[UUID] = set()
        self._closing: dict[UUID, datetime] = {}
        self._erased: dict[UUID, datetime] = {}
        self._inactive: set[UUID] = set()  # deactivated (not closing)
        self.closed: list[UUID] = []  # AccountClosed, as it would be published
        self._created: dict[UUID, datetime] = {}
        self.calls: list[str] = []  # contract methods called by requests, in order
        self._emails: dict[UUID, str] = {}
        self._passwords: dict[UUID, str] = {}  # a fake keeps them plain: it never leaves the test
        self._sessions: dict[str, UUID] = {}  # refresh token -> user

    def add_user(
        self, display_name: str = "Someone", *, active: bool = True, user_id: UUID | None = None
    ) -> UUID:
        profile = UserProfile(id=user_id or uuid.uuid4(), display_name=display_name, active=active)
        self._profiles[profile.id] = profile
        return profile.id

    def deactivate(self, user_id: UUID) -> None:
        self._profiles[user_id] = msgspec.structs.replace(self._profiles[user_id], active=False)
        self._inactive.add(user_id)
        self._revoke(user_id)

    def _revoke(self, user_id: UUID) -> None:
        earlier = self._revocations.get(user_id)
        self._revocations[user_id] = SessionRevocation(
            user_id=user_id, epoch=earlier.epoch + 1 if earlier else 1, revoked_at=utcnow()
        )

    def make_admin(self, user_id: UUID) -> None:
        self._administrators.add(self._find(user_id).id)

    def remove_user(self, user_id: UUID) -> None:
        del self._profiles[user_id]

    async def get_user(self, user_id: UUID) -> UserProfile:
        self.calls.append("get_user")
        return self._find(user_id)

    async def get_users(self, user_ids: list[UUID]) -> list[UserProfile]:
        self.calls.append("get_users")
        return [self._profiles[i] for i in dict.fromkeys(user_ids) if i in self._profiles]

    async def require_active_user(self, user_id: UUID) -> UserProfile:
        self.calls.append("require_active_user")
        profile = self._find(user_id)
        if not profile.active:
            raise UserInactive(f"user {user_id} is deactivated")
        return profile

    async def require_administrator(self, user_id: UUID) -> UserProfile:
        self.calls.append("require_administrator")
        profile = self._profiles.get(user_id)
        if profile is None or not profile.active or user_id not in self._administrators:
            raise NotPermittedOnUser("only an administrator may do that")
        return profile

    async def session_revocations(self, since: datetime) -> list[SessionRevocation]:
        # Not in ``calls``: every process polls it, whatever the requests do.
        found = [r for r in self._revocations.values() if r.revoked_at > since]
        return sorted(found, key=lambda r: r.revoked_at)

    async def account_record(self, user_id: UUID) -> AccountRecord:
        self.calls.append("account_record")
        profile = self._find(user_id)
        return AccountRecord(
            id=user_id,
            email=self._emails.get(user_id, f"{user_id.hex[:8]}@example.com")
            if user_id not in self._erased
            else f"erased-{user_id}@invalid",
            display_name=profile.display_name,
            active=profile.active,
            is_admin=user_id in self._administrators,
            created_at=self._created.setdefault(user_id, utcnow()),
        )

    async def close_account(self, user_id: UUID, step_key: str) -> AccountClosing:
        self.calls.append("close_account")
        self._find(user_id)
        if user_id not in self._closing and user_id not in self._erased:
            self._closing[user_id] = utcnow()
            self._set_active(user_id)
            self._revoke(user_id)
        return self._closing_of(user_id)

    async def reopen_account(self, user_id: UUID, step_key: str) -> AccountClosing:
        self.calls.append("reopen_account")
        self._find(user_id)
        if user_id not in self._erased:
            self._closing.pop(user_id, None)
            self._set_active(user_id)
        return self._closing_of(user_id)

    async def erase_account(self, user_id: UUID, closed_by: UUID, step_key: str) -> AccountErased:
        self.calls.append("erase_account")
        profile = self._find(user_id)
        if user_id in self._erased:
            return AccountErased(user_id=user_id, erased_at=self._erased[user_id], redacted_events=0)
        if user_id not in self._closing:
            raise AccountNotClosing(f"the account of {user_id} is not marked closing")
        self._erased[user_id] = utcnow()
        self._profiles[user_id] = msgspec.structs.replace(
            profile, display_name=ERASED_DISPLAY_NAME, active=False
        )
        self._administrators.discard(user_id)
        self._revoke(user_id)
        self.closed.append(user_id)
        return AccountErased(user_id=user_id, erased_at=self._erased[user_id], redacted_events=0)

    def _set_active(self, user_id: UUID) -> None:
        active = (
            user_id not in self._closing and user_id not in self._erased and user_id not in self._inactive
        )
        self._profiles[user_id] = msgspec.structs.replace(self._profiles[user_id], active=active)

    def _closing_of(self, user_id: UUID) -> AccountClosing:
        return AccountClosing(
            user_id=user_id, closing_since=self._closing.get(user_id), erased=user_id in self._erased
        )

    def _find(self, user_id: UUID) -> UserProfile:
        if user_id not in self._profiles:
            raise UserNotFound(f"no user {user_id}")
        return self._profiles[user_id]

    async def register(self, *, email: str, password: str, display_name: str) -> AccountRecord:
        if email.strip().casefold() in {e.casefold() for e in self._emails.values()}:
            raise EmailAlreadyRegistered(f"{email} is already registered")
        user_id = self.add_user(display_name.strip())
        self._emails[user_id], self._passwords[user_id] = email.strip(), password
        return await self.account_record(user_id)

    async def log_in(self, *, email: str, password: str) -> TokenPair:
        for user_id, known in self._emails.items():
            if (
                known.casefold() == email.strip().casefold()
                and self._passwords[user_id] == password
                and self._profiles[user_id].active
            ):
                return self._session(user_id)
        raise InvalidCredentials

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        user_id = self._sessions.pop(refresh_token, None)
        if user_id is None or not self._profiles[user_id].active:
            raise InvalidRefreshToken
        return self._session(user_id)

    async def log_out(self, *, refresh_token: str) -> None:
        self._sessions.pop(refresh_token, None)

    async def find_people(self, text: str, *, limit: int = 20, cursor: str | None = None) -> PeoplePage:
        found = sorted(
            (p for p in self._profiles.values() if p.active and text.casefold() in p.display_name.casefold()),
            key=lambda p: (p.display_name.casefold(), p.id),
        )
        start = int(cursor or 0)
        more = start + limit < len(found)
        return PeoplePage(
            items=found[start : start + limit], next_cursor=str(start + limit) if more else None
        )

    async def change_profile(self, principal: Principal, *, display_name: str) -> AccountRecord:
        profile = self._find(principal.user_id)
        self._profiles[profile.id] = msgspec.structs.replace(profile, display_name=display_name.strip())
        return await self.account_record(profile.id)

    async def change_password(self, principal: Principal, *, current: str, new: str) -> TokenPair:
        if self._passwords.get(principal.user_id) != current:
            raise InvalidInput([FieldError(field="current_password", message="is not your password")])
        self._passwords[principal.user_id] = new
        await self.log_out_everywhere(principal)
        return self._session(principal.user_id)

    async def log_out_everywhere(self, principal: Principal) -> None:
        self._sessions = {t: u for t, u in self._sessions.items() if u != principal.user_id}
        self._revoke(principal.user_id)

    def _session(self, user_id: UUID) -> TokenPair:
        refresh_token = uuid.uuid4().hex
        self._sessions[refresh_token] = user_id
        return TokenPair(access_token=f"fake-{uuid.uuid4().hex}", expires_in=900, refresh_token=refresh_token)
