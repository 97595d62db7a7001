"""The modules this application is made of. Adding a module means adding it here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import modules.accounts
import modules.activity
import modules.identity
import modules.notifications
import modules.tasks

if TYPE_CHECKING:
    from app.kernel.module import Module

__all__ = ("MODULES",)

MODULES: tuple[Module, ...] = (
    modules.identity.module,
    modules.tasks.module,
    modules.notifications.module,
    modules.activity.module,
    modules.accounts.module,
)
