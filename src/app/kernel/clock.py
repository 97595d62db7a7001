"""The one clock: timezone-aware UTC now. Services take it as their default ``clock``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ("Clock", "utcnow")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)
