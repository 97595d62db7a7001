"""Alembic environment of the tasks module; run through `tessera db upgrade`."""

from alembic import context

from app.kernel.migrations import run_env
from modules.tasks.tables import metadata

run_env(context, metadata)
