"""Identity: users, credentials and tokens."""

from modules.identity.module import module

__all__ = ("module",)
