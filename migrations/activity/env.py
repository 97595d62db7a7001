"""Alembic environment of the activity module; run through `tessera db upgrade`."""

from alembic import context

from app.kernel.migrations import run_env
from modules.activity.tables import metadata

run_env(context, metadata)
