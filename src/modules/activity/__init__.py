"""Activity: the history of every task and of what each user did, kept as an event store."""

from modules.activity.module import module

__all__ = ("module",)
