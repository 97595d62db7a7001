"""Where the project's own files live, for a source checkout and for the container image alike."""

from __future__ import annotations

from pathlib import Path

__all__ = ("CONFIG_DIR", "MIGRATIONS_DIR", "PROJECT_ROOT")

# src/app/kernel/paths.py -> the project root holds config/ and migrations/ beside src/.
PROJECT_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = PROJECT_ROOT / "config"
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
