"""Where the files the program reads at run time live: config defaults and migrations.

They ship inside the distribution (``app/_resources/``, see pyproject's force-include), so
an installed wheel finds them from any directory. A source checkout (the editable install
of `make`) reads the same files where they are kept, at the project root.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ("CONFIG_DIR", "MIGRATIONS_DIR")


def _resource(name: str) -> Path:
    packaged = files("app") / "_resources" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / name  # src/app/kernel/paths.py -> the checkout


CONFIG_DIR = _resource("config")
MIGRATIONS_DIR = _resource("migrations")
