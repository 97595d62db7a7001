"""Crash points: where a test may make this process die as if the power went out.

``TESSERA_CRASH_AT=relay.after_publish`` (or ``name:N`` for the N-th time it is reached,
several separated by commas) makes :func:`crash_point` end the process with
``os._exit`` at that point: no cleanup, no flush, no goodbye — exactly what a ``kill -9``
at that instant would leave behind. Unset (always, in production) it costs one dict look-up.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ("CRASH_ENV", "CRASH_EXIT_CODE", "crash_point")

CRASH_ENV = "TESSERA_CRASH_AT"
CRASH_EXIT_CODE = 86

log = logging.getLogger("tessera.faults")


def _parse(spec: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition(":")
        points[name] = int(nth) if nth.isdigit() else 1
    return points


_armed = _parse(os.environ.get(CRASH_ENV, ""))
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Die here if this point is armed (and reached for the N-th time)."""
    if name not in _armed:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] == _armed[name]:
        log.critical("crash point %s reached: exiting now", name)
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
