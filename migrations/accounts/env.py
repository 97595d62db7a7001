"""Alembic environment of the accounts module; run through `tessera db upgrade`."""

from alembic import context

from app.kernel.migrations import run_env
from modules.accounts.tables import metadata

run_env(context, metadata)
