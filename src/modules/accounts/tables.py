"""The accounts schema: only the kernel's saga log (its closures), made by its migrations."""

from __future__ import annotations

from app.kernel.db import module_metadata

__all__ = ("metadata",)

metadata = module_metadata()  # no tables of its own: what it keeps is the saga log's
