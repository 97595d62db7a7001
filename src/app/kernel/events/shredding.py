"""Crypto-shredding: personal data in an append-only store that can still be erased.

An event store never rewrites history, yet a person may ask to be forgotten. So a
person's values are never stored in the clear: each is *sealed* (AES-256-GCM) under a
data key of that person's own, kept in the ``subject_keys`` table of the same database.
Erasing the person deletes that one row; every sealed copy — in events, in projections
built from them, in backups — is from then on ciphertext no one can open, and opens as
the placeholder it was sealed with ("deleted user").

A sealed value is a small JSON object inside the event's data::

    {"sealed": "<subject uuid>", "ct": "<base64 nonce + ciphertext>", "erased_as": "deleted user"}

Keys are read per unit of work, never cached across them, so an erasure holds in every
process the moment it commits.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, insert, select

from app.kernel.clock import utcnow
from app.kernel.events.tables import subject_keys

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ("Keyring", "SubjectKeys", "is_sealed", "sealed_subjects")

_NONCE = 12
_SEALED = "sealed"


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and _SEALED in value and "ct" in value


def sealed_subjects(value: Any) -> set[UUID]:
    """Whose keys opening ``value`` needs: every subject a value inside it is sealed under."""
    if is_sealed(value):
        return {UUID(value[_SEALED])}
    if isinstance(value, dict):
        return set().union(*map(sealed_subjects, value.values()))
    if isinstance(value, list):
        return set().union(*map(sealed_subjects, value))
    return set()


_ERASED = b""  # a subject's key after erasure: a tombstone


class Keyring:
    """The data keys one unit of work has read or made: seals and opens values with them."""

    __slots__ = ("_keys", "_new")

    def __init__(self, keys: Mapping[UUID, bytes]) -> None:
        self._keys = dict(keys)
        self._new: dict[UUID, bytes] = {}

    def seal(self, subject: UUID, value: Any, *, erased_as: Any = None) -> dict[str, Any]:
        """``value`` (anything JSON can hold) sealed under ``subject``'s key, made if it has none."""
        key = self._keys.get(subject)
        if key == _ERASED:  # erased already: what comes late about them is kept as erased
            return {_SEALED: str(subject), "ct": "", "erased_as": erased_as}
        if key is None:
            key = self._keys[subject] = self._new[subject] = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(_NONCE)
        ciphertext = AESGCM(key).encrypt(nonce, msgspec.json.encode(value), subject.bytes)
        return {
            _SEALED: str(subject),
            "ct": base64.b64encode(nonce + ciphertext).decode(),
            "erased_as": erased_as,
        }

    def open(self, value: Any) -> Any:
        """``value`` with every sealed value inside it opened, or its placeholder if erased."""
        if is_sealed(value):
            key = self._keys.get(UUID(value[_SEALED]))
            if not key:  # no key, or its tombstone
                return value.get("erased_as")
            raw = base64.b64decode(value["ct"])
            opened = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], UUID(value[_SEALED]).bytes)
            return msgspec.json.decode(opened)
        if isinstance(value, dict):
            return {k: self.open(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.open(v) for v in value]
        return value

    @property
    def made(self) -> Mapping[UUID, bytes]:
        """Keys made by :meth:`seal` that the store does not hold yet."""
        return self._new


class SubjectKeys:
    """The ``subject_keys`` table of one module's database."""

    @staticmethod
    async def keyring(connection: AsyncConnection, subjects: Iterable[UUID]) -> Keyring:
        """The keys of ``subjects`` that exist (erased ones do not), for this unit of work."""
        wanted = set(subjects)
        if not wanted:
            return Keyring({})
        rows = await connection.execute(
            select(subject_keys.c.subject, subject_keys.c.key).where(subject_keys.c.subject.in_(wanted))
        )
        return Keyring({row.subject: bytes(row.key) for row in rows})

    @staticmethod
    async def keep(connection: AsyncConnection, keyring: Keyring) -> None:
        """Store the keys ``keyring`` made, in the caller's transaction."""
        if keyring.made:
            now = utcnow()
            await connection.execute(
                insert(subject_keys),
                [{"subject": s, "key": k, "created_at": now} for s, k in keyring.made.items()],
            )

    @staticmethod
    async def erase(connection: AsyncConnection, subject: UUID) -> bool:
        """Delete ``subject``'s key: their sealed values can never be opened again. Idempotent.

        True if there was a key to delete; a tombstone stays, so that nothing sealed later
        under ``subject`` can be opened either.

        SQLite overwrites deleted bytes (every module's file has ``secure_delete`` on); once
        this has committed, :meth:`Database.expunge` pushes older copies out of the
        write-ahead log (SQLite) or of dead row versions (PostgreSQL).
        """
        result = await connection.execute(
            delete(subject_keys).where(subject_keys.c.subject == subject, subject_keys.c.key != _ERASED)
        )
        # A tombstone in its place: an event about them that comes late is kept erased, not
        # sealed under a new key that would open it again.
        tombstone = select(subject_keys.c.subject).where(subject_keys.c.subject == subject)
        if (await connection.execute(tombstone)).first() is None:
            await connection.execute(
                insert(subject_keys).values(subject=subject, key=_ERASED, created_at=utcnow())
            )
        return bool(result.rowcount)
