"""Users, credentials and refresh-token rules. Pure Python: no I/O."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from uuid import UUID

import msgspec

from contracts.identity import TokenPair, UserProfile

__all__ = (
    "EMAIL_PATTERN",
    "RefreshTokenRecord",
    "TokenPair",
    "User",
    "email_key",
    "hash_refresh_token",
    "new_refresh_token",
)

# Deliberately loose: one @, no spaces or control characters, a dot in the domain. Delivery is
# the real test.
EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$"


class User(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    email: str
    display_name: str
    password_hash: str
    active: bool
    created_at: datetime
    is_admin: bool = False
    session_epoch: int = 0  # access tokens of an earlier epoch are void
    closing_since: datetime | None = None  # an account closure under way (see accounts)
    erased_at: datetime | None = None  # closed for good: its personal data tombstoned

    @property
    def usable(self) -> bool:
        """May sign in, refresh a session and be given work: active, and not closing."""
        return self.active and self.closing_since is None

    def may_deactivate(self, user_id: UUID) -> bool:
        """An active administrator may deactivate anyone; anyone may deactivate themself."""
        return self.usable and (self.is_admin or self.id == user_id)

    def may_administer(self) -> bool:
        """List every account, reactivate one: an active administrator only."""
        return self.usable and self.is_admin

    def profile(self) -> UserProfile:
        return UserProfile(id=self.id, display_name=self.display_name, active=self.usable)


class RefreshTokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    family_id: UUID
    user_id: UUID
    expires_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None

    def is_spent(self) -> bool:
        """Rotated or revoked: presenting it again means someone kept a copy."""
        return self.rotated_at is not None or self.revoked_at is not None


def email_key(email: str) -> str:
    return email.strip().casefold()


def new_refresh_token() -> tuple[str, str]:
    """A fresh opaque refresh token and the hash under which it is stored."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
