"""Queries over the identity tables, inside the unit of work the caller opened."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.kernel.unit_of_work import UnitOfWork
from contracts.identity import EmailAlreadyRegistered, SessionRevocation
from modules.identity.domain import (
    RefreshTokenRecord,
    User,
    email_key,
)
from modules.identity.tables import refresh_tokens, users

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ("IdentityRepository", "IdentityUnit")

_USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.display_name,
    users.c.password_hash,
    users.c.active,
    users.c.is_admin,
    users.c.created_at,
    users.c.session_epoch,
)
_TOKEN_COLUMNS = (
    refresh_tokens.c.id,
    refresh_tokens.c.family_id,
    refresh_tokens.c.user_id,
    refresh_tokens.c.expires_at,
    refresh_tokens.c.rotated_at,
    refresh_tokens.c.revoked_at,
)


# Built once: these run on every request that shows a user.
_USER_BY_ID = select(*_USER_COLUMNS).where(users.c.id == bindparam("user_id"))
_USERS_BY_IDS = select(*_USER_COLUMNS).where(users.c.id.in_(bindparam("user_ids", expanding=True)))


class IdentityRepository:
    __slots__ = ("_connection",)

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def add_user(self, user: User) -> None:
        try:
            async with self._connection.begin_nested():
                await self._connection.execute(
                    insert(users).values(
                        id=user.id,
                        email=user.email,
                        email_key=email_key(user.email),
                        display_name=user.display_name,
                        password_hash=user.password_hash,
                        active=user.active,
                        is_admin=user.is_admin,
                        created_at=user.created_at,
                    )
                )
        except IntegrityError:
            raise EmailAlreadyRegistered from None

    async def user_by_id(self, user_id: UUID) -> User | None:
        row = (await self._connection.execute(_USER_BY_ID, {"user_id": user_id})).first()
        return _user(row._mapping) if row else None

    async def user_by_email(self, email: str) -> User | None:
        query = select(*_USER_COLUMNS).where(users.c.email_key == email_key(email))
        row = (await self._connection.execute(query)).first()
        return _user(row._mapping) if row else None

    async def users_by_ids(self, user_ids: Sequence[UUID]) -> list[User]:
        if not user_ids:
            return []
        rows = await self._connection.execute(_USERS_BY_IDS, {"user_ids": list(set(user_ids))})
        return [_user(row._mapping) for row in rows]

    async def set_password_hash(self, user_id: UUID, password_hash: str) -> None:
        await self._connection.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )

    async def deactivate(self, user_id: UUID) -> bool:
        """Mark an active user inactive; False if they were not active."""
        result = await self._connection.execute(
            update(users).where(users.c.id == user_id, users.c.active.is_(True)).values(active=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def grant_admin(self, user_id: UUID) -> None:
        await self._connection.execute(update(users).where(users.c.id == user_id).values(is_admin=True))

    async def revoke_sessions(self, user_id: UUID, at: datetime) -> None:
        """Void every token the user holds: access tokens by a new epoch, refresh tokens by revocation."""
        await self._connection.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(session_epoch=users.c.session_epoch + 1, sessions_revoked_at=at)
        )
        await self._connection.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )

    async def session_revocations(self, since: datetime) -> list[SessionRevocation]:
        rows = await self._connection.execute(
            select(users.c.id, users.c.session_epoch, users.c.sessions_revoked_at)
            .where(users.c.sessions_revoked_at > since)
            .order_by(users.c.sessions_revoked_at)
        )
        return [SessionRevocation(user_id=id_, epoch=epoch, revoked_at=at) for id_, epoch, at in rows]

    async def add_refresh_token(
        self,
        *,
        token_id: UUID,
        family_id: UUID,
        user_id: UUID,
        token_hash: str,
        issued_at: datetime,
        expires_at: datetime,
    ) -> None:
        await self._connection.execute(
            insert(refresh_tokens).values(
                id=token_id,
                family_id=family_id,
                user_id=user_id,
                token_hash=token_hash,
                issued_at=issued_at,
                expires_at=expires_at,
            )
        )

    async def refresh_token_by_hash(self, token_hash: str) -> RefreshTokenRecord | None:
        query = select(*_TOKEN_COLUMNS).where(refresh_tokens.c.token_hash == token_hash)
        row = (await self._connection.execute(query)).first()
        return RefreshTokenRecord(**row._mapping) if row else None

    async def rotate_refresh_token(self, token_id: UUID, at: datetime) -> bool:
        """Mark a live token rotated; False if another request spent it first."""
        result = await self._connection.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.id == token_id,
                refresh_tokens.c.rotated_at.is_(None),
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(rotated_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_family(self, family_id: UUID, at: datetime) -> None:
        await self._connection.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )


def _user(row: Any) -> User:
    return User(**row)


class IdentityUnit(UnitOfWork):
    """A unit of work of the identity module: its accounts (users and refresh tokens) and its events."""

    def __init__(self, connection: AsyncConnection, *, writable: bool) -> None:
        super().__init__(connection, writable=writable)
        self.accounts = IdentityRepository(connection)
