"""The identity service: accounts and credentials, and the IdentityApi other modules call."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

import msgspec

from app.kernel.clock import Clock, utcnow
from contracts import FieldError, InvalidInput, Principal, in_utc
from contracts.identity import (
    AccountClosed,
    AccountClosing,
    AccountErased,
    AccountNotClosing,
    AccountRecord,
    AdministratorGranted,
    IdentityApi,
    InvalidCredentials,
    InvalidRefreshToken,
    NotPermittedOnUser,
    PeoplePage,
    SessionRevocation,
    UserDeactivated,
    UserInactive,
    UserNotFound,
    UserProfile,
    UserProfileChanged,
    UserReactivated,
    UserRegistered,
)
from modules.identity.domain import (
    TokenPair,
    User,
    email_key,
    hash_refresh_token,
    new_refresh_token,
)
from modules.identity.repository import IdentityRepository, IdentityUnit

if TYPE_CHECKING:
    from app.kernel.security import AccessTokens, Passwords
    from app.kernel.throttle import AttemptLimit
    from app.kernel.unit_of_work import UnitsOfWork

__all__ = ("IdentityService",)


class IdentityService(IdentityApi):
    """Implements ``contracts.identity.IdentityApi`` and the module's own account operations."""

    def __init__(
        self,
        *,
        units: UnitsOfWork[IdentityUnit],
        passwords: Passwords,
        access_tokens: AccessTokens,
        failed_logins: AttemptLimit,
        refresh_token_ttl_seconds: int,
        clock: Clock = utcnow,
    ) -> None:
        self._units = units
        self._failed_logins = failed_logins
        self._passwords = passwords
        self._access_tokens = access_tokens
        self._refresh_ttl = timedelta(seconds=refresh_token_ttl_seconds)
        self._clock = clock

    # -- IdentityApi -------------------------------------------------------------------

    async def get_user(self, user_id: UUID) -> UserProfile:
        async with self._units.read() as unit:
            user = await unit.accounts.user_by_id(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user.profile()

    async def require_administrator(self, user_id: UUID) -> UserProfile:
        async with self._units.read() as unit:
            user = await self._administrator(unit.accounts, Principal(user_id=user_id))
        return user.profile()

    async def get_users(self, user_ids: list[UUID]) -> list[UserProfile]:
        async with self._units.read() as unit:
            found = {u.id: u for u in await unit.accounts.users_by_ids(user_ids)}
        ordered = dict.fromkeys(user_ids)
        return [found[user_id].profile() for user_id in ordered if user_id in found]

    async def require_active_user(self, user_id: UUID) -> UserProfile:
        profile = await self.get_user(user_id)
        if not profile.active:
            raise UserInactive(f"user {user_id} is deactivated or closing their account")
        return profile

    async def session_revocations(self, since: datetime) -> list[SessionRevocation]:
        async with self._units.read() as unit:
            return await unit.accounts.session_revocations(in_utc(since, field="since"))

    async def account_record(self, user_id: UUID) -> AccountRecord:
        async with self._units.read() as unit:
            user = await self._known(unit.accounts, user_id)
        return _record(user)

    async def close_account(self, user_id: UUID, step_key: str) -> AccountClosing:
        now = self._clock()
        async with self._units.write() as unit:
            user = await self._known(unit.accounts, user_id)
            if user.closing_since is None and user.erased_at is None:
                await unit.accounts.mark_closing(user_id, now)
                await unit.accounts.revoke_sessions(user_id, now)
                user = msgspec.structs.replace(user, closing_since=now)
        return _closing(user)

    async def reopen_account(self, user_id: UUID, step_key: str) -> AccountClosing:
        async with self._units.write() as unit:
            user = await self._known(unit.accounts, user_id)
            if user.closing_since is not None and user.erased_at is None:
                await unit.accounts.mark_closing(user_id, None)
                user = msgspec.structs.replace(user, closing_since=None)
        return _closing(user)

    async def erase_account(self, user_id: UUID, closed_by: UUID, step_key: str) -> AccountErased:
        now = self._clock()
        async with self._units.write() as unit:
            user = await self._known(unit.accounts, user_id)
            if user.erased_at is not None:  # a replay: erased already, and AccountClosed went out
                return AccountErased(user_id=user_id, erased_at=user.erased_at, redacted_events=0)
            if user.closing_since is None:
                raise AccountNotClosing(f"the account of {user_id} is not marked closing")
            await unit.accounts.revoke_sessions(user_id, now)
            redacted = await unit.accounts.erase(user_id, now)
            unit.publish(
                AccountClosed(event_id=uuid.uuid4(), occurred_at=now, user_id=user_id, closed_by=closed_by)
            )
        await self._units.expunge("users")  # no older copy of the e-mail or name left in the files
        return AccountErased(user_id=user_id, erased_at=now, redacted_events=redacted)

    # -- accounts ----------------------------------------------------------------------

    async def register(self, *, email: str, password: str, display_name: str) -> AccountRecord:
        password_hash = await self._passwords.hash(password)
        user = User(
            id=uuid.uuid4(),
            email=email.strip(),
            display_name=display_name.strip(),
            password_hash=password_hash,
            active=True,
            created_at=self._clock(),
        )
        async with self._units.write() as unit:
            await unit.accounts.add_user(user)
            unit.publish(
                UserRegistered(
                    event_id=uuid.uuid4(),
                    occurred_at=user.created_at,
                    user_id=user.id,
                    display_name=user.display_name,
                    registered_at=user.created_at,
                ),
            )
        return _record(user)

    async def deactivate(self, principal: Principal, user_id: UUID) -> User:
        """Deactivate a user (an administrator, or the user themself) and tell the other modules.

        The user's refresh tokens are revoked. Deactivating an inactive user changes nothing.
        """
        now = self._clock()
        async with self._units.write() as unit:
            accounts = unit.accounts
            actor = await accounts.user_by_id(principal.user_id)
            if actor is None or not actor.may_deactivate(user_id):
                raise NotPermittedOnUser(
                    "only an administrator or the user themself may deactivate an account"
                )
            target = await accounts.user_by_id(user_id)
            if target is None:
                raise UserNotFound(f"no user {user_id}")
            if await accounts.deactivate(user_id):
                await accounts.revoke_sessions(user_id, now)
                unit.publish(
                    UserDeactivated(
                        event_id=uuid.uuid4(), occurred_at=now, user_id=user_id, deactivated_by=actor.id
                    ),
                )
        return msgspec.structs.replace(target, active=False)

    async def reactivate(self, principal: Principal, user_id: UUID) -> User:
        """Give a deactivated user their account back (an administrator only); they sign in afresh."""
        now = self._clock()
        async with self._units.write() as unit:
            accounts = unit.accounts
            await self._administrator(accounts, principal)
            target = await accounts.user_by_id(user_id)
            if target is None:
                raise UserNotFound(f"no user {user_id}")
            if await accounts.reactivate(user_id):
                unit.publish(
                    UserReactivated(
                        event_id=uuid.uuid4(),
                        occurred_at=now,
                        user_id=user_id,
                        reactivated_by=principal.user_id,
                    ),
                )
        return msgspec.structs.replace(target, active=True)

    async def find_people(self, text: str, *, limit: int = 20, cursor: str | None = None) -> PeoplePage:
        """Active users whose display name holds ``text``: whom work can be given to."""
        async with self._units.read() as unit:
            found, next_cursor = await unit.accounts.find_active(text, limit=limit, cursor=cursor)
        return PeoplePage(items=[user.profile() for user in found], next_cursor=next_cursor)

    async def accounts_page(
        self, principal: Principal, *, active: bool | None, limit: int, cursor: str | None
    ) -> tuple[list[User], str | None]:
        """Every account with every field (an administrator only)."""
        async with self._units.read() as unit:
            await self._administrator(unit.accounts, principal)
            return await unit.accounts.page_of_users(active=active, limit=limit, cursor=cursor)

    async def change_profile(self, principal: Principal, *, display_name: str) -> AccountRecord:
        """Change what others see of the caller; announced, so that copies and read models follow."""
        display_name = display_name.strip()
        async with self._units.write() as unit:
            accounts = unit.accounts
            user = await accounts.user_by_id(principal.user_id)
            if user is None:
                raise UserNotFound(f"no user {principal.user_id}")
            if display_name != user.display_name:
                await accounts.rename(user.id, display_name)
                unit.publish(
                    UserProfileChanged(
                        event_id=uuid.uuid4(),
                        occurred_at=self._clock(),
                        user_id=user.id,
                        display_name=display_name,
                    ),
                )
        return _record(msgspec.structs.replace(user, display_name=display_name))

    async def change_password(self, principal: Principal, *, current: str, new: str) -> TokenPair:
        """A new password; every other session ends. The caller gets a fresh pair of tokens.

        The current password is checked as a sign-in is, under the account's attempt limit.
        """
        user = await self.account(principal.user_id)
        account = email_key(user.email)
        await self._failed_logins.attempt(account)
        if not await self._passwords.verify(user.password_hash, current):
            raise InvalidInput([FieldError(field="current_password", message="is not your password")])
        await self._failed_logins.forgive(account)
        new_hash = await self._passwords.hash(new)
        async with self._units.write() as unit:
            accounts = unit.accounts
            await accounts.set_password_hash(user.id, new_hash)
            await accounts.revoke_sessions(user.id, self._clock())
            renewed = await accounts.user_by_id(user.id)
            assert renewed is not None
            return await self._issue(accounts, user=renewed, family_id=uuid.uuid4())

    async def log_out_everywhere(self, principal: Principal) -> None:
        """End every session of the caller: refresh tokens revoked, access tokens voided within a poll."""
        async with self._units.write() as unit:
            await unit.accounts.revoke_sessions(principal.user_id, self._clock())

    async def make_admin(self, email: str) -> User:
        """Grant the administrator role (the command line's way to bootstrap the first one)."""
        async with self._units.write() as unit:
            accounts = unit.accounts
            user = await accounts.user_by_email(email)
            if user is None:
                raise UserNotFound(f"no user with e-mail {email!r}")
            if not user.is_admin:
                await accounts.grant_admin(user.id)
                unit.publish(
                    AdministratorGranted(
                        event_id=uuid.uuid4(), occurred_at=self._clock(), user_id=user.id, granted_by=None
                    )
                )
        return msgspec.structs.replace(user, is_admin=True)

    async def account(self, user_id: UUID) -> User:
        async with self._units.read() as unit:
            user = await unit.accounts.user_by_id(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    async def log_in(self, *, email: str, password: str) -> TokenPair:
        """Exchange credentials for tokens; unknown e-mail and wrong password look alike.

        Each account has a few attempts per window (Throttled beyond them, before any hash
        is computed); signing in successfully gives them back.
        """
        account = email_key(email)
        await self._failed_logins.attempt(account)
        async with self._units.read() as unit:
            user = await unit.accounts.user_by_email(email)
        stored_hash = user.password_hash if user else None
        if not await self._passwords.verify(stored_hash, password):
            raise InvalidCredentials
        assert user is not None  # verify() is False without a hash
        if not user.usable:
            raise InvalidCredentials
        await self._failed_logins.forgive(account)
        async with self._units.write() as unit:
            accounts = unit.accounts
            if self._passwords.needs_rehash(user.password_hash):
                new_hash = await self._passwords.hash(password)
                await accounts.set_password_hash(user.id, new_hash)
            return await self._issue(accounts, user=user, family_id=uuid.uuid4())

    async def refresh(self, *, refresh_token: str) -> TokenPair:
        """Rotate a refresh token. A spent token is theft: its whole family is revoked."""
        now = self._clock()
        async with self._units.write() as unit:
            accounts = unit.accounts
            record = await accounts.refresh_token_by_hash(hash_refresh_token(refresh_token))
            if record is None:
                raise InvalidRefreshToken
            stolen = record.is_spent() or not await accounts.rotate_refresh_token(record.id, now)
            if stolen:
                await accounts.revoke_family(record.family_id, now)
            else:
                user = await accounts.user_by_id(record.user_id)
                if record.expires_at > now and user is not None and user.usable:
                    return await self._issue(accounts, user=user, family_id=record.family_id)
        # Leaving the block committed the revocation or the spent rotation; now refuse.
        raise InvalidRefreshToken

    async def log_out(self, *, refresh_token: str) -> None:
        """Revoke the refresh token's family. Unknown tokens are ignored: logout is idempotent."""
        async with self._units.write() as unit:
            accounts = unit.accounts
            record = await accounts.refresh_token_by_hash(hash_refresh_token(refresh_token))
            if record is not None:
                await accounts.revoke_family(record.family_id, self._clock())

    @staticmethod
    async def _known(accounts: IdentityRepository, user_id: UUID) -> User:
        user = await accounts.user_by_id(user_id)
        if user is None:
            raise UserNotFound(f"no user {user_id}")
        return user

    @staticmethod
    async def _administrator(accounts: IdentityRepository, principal: Principal) -> User:
        actor = await accounts.user_by_id(principal.user_id)
        if actor is None or not actor.may_administer():
            raise NotPermittedOnUser("only an administrator may do that")
        return actor

    async def _issue(self, accounts: IdentityRepository, *, user: User, family_id: UUID) -> TokenPair:
        now = self._clock()
        token, token_hash = new_refresh_token()
        await accounts.add_refresh_token(
            token_id=uuid.uuid4(),
            family_id=family_id,
            user_id=user.id,
            token_hash=token_hash,
            issued_at=now,
            expires_at=now + self._refresh_ttl,
        )
        access = self._access_tokens.issue(Principal(user_id=user.id), session_epoch=user.session_epoch)
        return TokenPair(access_token=access.token, expires_in=access.expires_in, refresh_token=token)


def _closing(user: User) -> AccountClosing:
    return AccountClosing(
        user_id=user.id, closing_since=user.closing_since, erased=user.erased_at is not None
    )


def _record(user: User) -> AccountRecord:
    """What identity holds about a user but their credentials."""
    return AccountRecord(
        id=user.id,
        email=user.email,
        display_name=user.display_name,
        active=user.usable,
        is_admin=user.is_admin,
        created_at=user.created_at,
    )
