"""Notifications: each user's in-app inbox, built from other modules' events."""

from modules.notifications.module import module

__all__ = ("module",)
