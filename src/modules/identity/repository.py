"""Queries over the identity tables, inside the unit of work the caller opened."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, bindparam, delete, func, insert, literal, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from app.kernel.events.outbox import redact_outbox
from app.kernel.pagination import decode_cursor, encode_cursor
from app.kernel.unit_of_work import UnitOfWork
from contracts.identity import ERASED_DISPLAY_NAME, EmailAlreadyRegistered, SessionRevocation
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
    users.c.closing_since,
    users.c.erased_at,
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

    async def reactivate(self, user_id: UUID) -> bool:
        """Mark an inactive user active; False if they were active already."""
        result = await self._connection.execute(
            update(users).where(users.c.id == user_id, users.c.active.is_(False)).values(active=True)
        )
        return bool(getattr(result, "rowcount", 0))

    async def rename(self, user_id: UUID, display_name: str) -> None:
        await self._connection.execute(
            update(users).where(users.c.id == user_id).values(display_name=display_name)
        )

    async def find_active(
        self, text: str, *, limit: int, cursor: str | None
    ) -> tuple[list[User], str | None]:
        """Active users whose display name holds ``text`` (any case), by name; and the next cursor."""
        name_key = func.lower(users.c.display_name)
        conditions: list[ColumnElement[bool]] = [
            users.c.active.is_(True),
            users.c.closing_since.is_(None),
            name_key.contains(text.lower(), autoescape=True),
        ]
        if cursor is not None:
            after = decode_cursor(cursor, _NameCursor)
            conditions.append(
                tuple_(name_key, users.c.id)
                > tuple_(literal(after.name_key), literal(after.id, users.c.id.type))
            )
        statement = select(*_USER_COLUMNS).where(*conditions).order_by(name_key, users.c.id).limit(limit + 1)
        rows = (await self._connection.execute(statement)).all()
        page = [_user(row._mapping) for row in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(_NameCursor(page[-1].display_name.lower(), page[-1].id)) if more else None

    async def page_of_users(
        self, *, active: bool | None, limit: int, cursor: str | None
    ) -> tuple[list[User], str | None]:
        """Every account (or the active or inactive ones), oldest first; and the next cursor."""
        conditions: list[ColumnElement[bool]] = []
        if active is not None:
            conditions.append(users.c.active.is_(active))
        if cursor is not None:
            after = decode_cursor(cursor, _CreatedCursor)
            boundary = tuple_(
                literal(after.created_at, users.c.created_at.type), literal(after.id, users.c.id.type)
            )
            conditions.append(tuple_(users.c.created_at, users.c.id) > boundary)
        statement = (
            select(*_USER_COLUMNS)
            .where(*conditions)
            .order_by(users.c.created_at, users.c.id)
            .limit(limit + 1)
        )
        rows = (await self._connection.execute(statement)).all()
        page = [_user(row._mapping) for row in rows[:limit]]
        more = len(rows) > limit
        return page, encode_cursor(_CreatedCursor(page[-1].created_at, page[-1].id)) if more else None

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

    async def mark_closing(self, user_id: UUID, since: datetime | None) -> None:
        await self._connection.execute(update(users).where(users.c.id == user_id).values(closing_since=since))

    async def erase(self, user_id: UUID, at: datetime) -> int:
        """Tombstone the user's personal data and credentials; redact their outbox rows (how many)."""
        tombstone = f"erased-{user_id}@invalid"
        await self._connection.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(
                email=tombstone,
                email_key=tombstone,
                display_name=ERASED_DISPLAY_NAME,
                password_hash="!",  # noqa: S106  (no password hashes to this: no sign-in)
                active=False,
                is_admin=False,
                erased_at=at,
            )
        )
        await self._connection.execute(delete(refresh_tokens).where(refresh_tokens.c.user_id == user_id))
        return await redact_outbox(
            self._connection, key=str(user_id), fields={"display_name": ERASED_DISPLAY_NAME}
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


class _NameCursor(msgspec.Struct, frozen=True, array_like=True):
    """Where a page of people ended: the last one's name as compared, and id."""

    name_key: str
    id: UUID


class _CreatedCursor(msgspec.Struct, frozen=True, array_like=True):
    """Where a page of accounts ended: the last one's registration time and id."""

    created_at: Annotated[datetime, msgspec.Meta(tz=True)]
    id: UUID


def _user(row: Any) -> User:
    return User(**row)


class IdentityUnit(UnitOfWork):
    """A unit of work of the identity module: its accounts (users and refresh tokens) and its events."""

    def __init__(self, connection: AsyncConnection, *, writable: bool) -> None:
        super().__init__(connection, writable=writable)
        self.accounts = IdentityRepository(connection)
