"""Alembic environment of the notifications module; run through `tessera db upgrade`."""

from alembic import context

from app.kernel.migrations import run_env
from modules.notifications.tables import metadata

run_env(context, metadata)
