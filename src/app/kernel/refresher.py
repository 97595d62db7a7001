"""Knowledge another module owns, kept fresh in the background of every process that needs it.

Every process that checks users' tokens asks identity, now and then, whose sessions were
voided and which keys it publishes; each group of a split keeps its callers' service keys
fresh: one loop for all of them, here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

__all__ = ("Refresher",)

log = logging.getLogger("tessera.refresh")

STOP_GRACE_SECONDS = 10.0  # stop(): how long a refresh under way may take to finish


class Refresher:
    """Calls ``refresh`` at once, then every ``interval(failing)`` seconds, and soon after
    :meth:`wake` (never sooner than ``min_gap`` after the last call, so that callers cannot
    make it hammer the owner).

    A failing refresh keeps what was known: the failure is logged once, and its end once.
    """

    __slots__ = ("_busy", "_interval", "_min_gap", "_name", "_refresh", "_stopping", "_task", "_wanted")

    def __init__(
        self,
        name: str,
        refresh: Callable[[], Awaitable[object]],
        *,
        interval: Callable[[bool], float],
        min_gap: float = 0.0,
    ) -> None:
        self._name = name
        self._refresh = refresh
        self._interval = interval
        self._min_gap = min_gap
        self._wanted: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # in the middle of a refresh
        self._stopping = False

    def wake(self) -> None:
        """Refresh soon: something asked for what is not known yet."""
        if self._wanted is not None:
            self._wanted.set()

    async def start(self, *, wait_first: bool = False) -> None:
        """Refresh now and from then on; with ``wait_first``, one interval from now (just refreshed)."""
        if self._task is None:
            self._stopping = False
            self._wanted = asyncio.Event()
            self._task = asyncio.create_task(self._run(self._wanted, wait_first), name=self._name)

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """Stop refreshing. A refresh under way finishes first (for ``grace_seconds`` at most):
        cancelled in the middle of a query, a database connection can be left half-closed,
        and awaiting its task would then never end."""
        if self._task is None:
            return
        self._stopping = True
        task, self._task = self._task, None
        if not self._busy:
            task.cancel()
        _, late = await asyncio.wait([task], timeout=grace_seconds)
        if late:
            log.warning("%s: a refresh did not end within %.0fs; cancelled", self._name, grace_seconds)
            task.cancel()
            await asyncio.wait([task], timeout=grace_seconds)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            task.result()

    async def _run(self, wanted: asyncio.Event, wait_first: bool) -> None:
        failing = False
        if wait_first:
            await self._wait(wanted, failing)
        while True:
            wanted.clear()  # before the call: a wake() while it runs calls again at once
            self._busy = True
            try:
                await self._refresh()
            except Exception as exc:  # the owner is away, or answered badly: keep what is known
                if not failing:
                    log.warning("%s cannot be refreshed: %s: %s", self._name, type(exc).__name__, exc)
                failing = True
            else:
                if failing:
                    log.info("%s are refreshed again", self._name)
                failing = False
            finally:
                self._busy = False
            if self._stopping:  # stop() waited for this refresh to end
                return
            await self._wait(wanted, failing)

    async def _wait(self, wanted: asyncio.Event, failing: bool) -> None:
        if self._min_gap:
            await asyncio.sleep(self._min_gap)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wanted.wait(), timeout=max(0.0, self._interval(failing) - self._min_gap))
