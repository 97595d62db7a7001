"""The identity schema: users and their refresh-token families. Nobody else reads these."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Uuid, false

from app.kernel.db import UtcDateTime, module_metadata
from contracts.identity import DISPLAY_NAME_MAX, EMAIL_MAX

__all__ = ("metadata", "refresh_tokens", "users")

metadata = module_metadata()

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(EMAIL_MAX), nullable=False),
    # The e-mail as compared: case-folded, so that uniqueness ignores case.
    Column("email_key", String(EMAIL_MAX), nullable=False, unique=True),
    Column("display_name", String(DISPLAY_NAME_MAX), nullable=False),
    Column("password_hash", String(255), nullable=False),
    Column("active", Boolean, nullable=False),
    # May deactivate other users. Granted from the command line: `tessera users make-admin`.
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    Column("created_at", UtcDateTime, nullable=False),
    # Access tokens name the epoch they were issued in; bumping it (deactivation, signing out
    # everywhere, a new password) voids every earlier one, in every process, within a poll.
    Column("session_epoch", Integer, nullable=False, server_default="0"),
    Column("sessions_revoked_at", UtcDateTime, nullable=True, index=True),
    # An account closure under way: refused as if inactive until it is reopened or erased.
    Column("closing_since", UtcDateTime, nullable=True),
    # Closed for good: e-mail and name tombstoned, credentials unusable.
    Column("erased_at", UtcDateTime, nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Every token rotated out of one login shares a family; reuse of any revokes them all.
    Column("family_id", Uuid, nullable=False, index=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    # SHA-256 of the token: a stolen database yields no usable token.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("rotated_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
)
