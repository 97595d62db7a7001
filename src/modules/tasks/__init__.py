"""Tasks: the work users create, assign and complete."""

from modules.tasks.module import module

__all__ = ("module",)
