"""Accounts: a user's account as a whole — closing it (a saga across four modules), exporting it."""

from modules.accounts.module import module

__all__ = ("module",)
