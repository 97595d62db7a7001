"""Keyset pagination's opaque cursors: where the previous page ended, as a URL-safe token."""

from __future__ import annotations

import base64
import binascii
from typing import TypeVar

import msgspec

from contracts import FieldError, InvalidInput

__all__ = ("decode_cursor", "encode_cursor")

CursorT = TypeVar("CursorT")


def encode_cursor(position: object) -> str:
    """``position`` (a msgspec-encodable record) as an opaque token for ``next_cursor``."""
    return base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")


def decode_cursor(token: str, type_: type[CursorT]) -> CursorT:
    """The position a token stands for; InvalidInput on ``cursor`` if this API did not issue it."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return msgspec.json.decode(raw, type=type_)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidInput([FieldError(field="cursor", message="not a cursor this API issued")]) from None
