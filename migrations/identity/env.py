"""Alembic environment of the identity module; run through `tessera db upgrade`."""

from alembic import context

from app.kernel.migrations import run_env
from modules.identity.tables import metadata

run_env(context, metadata)
