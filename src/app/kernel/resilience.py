"""Circuit breaking with Resilience4j's semantics, for calls to another process.

A count-based sliding window records the outcome of the last ``window_size`` calls.
Once it holds at least ``minimum_calls`` outcomes and the failure rate reaches
``failure_rate_threshold`` percent, the breaker opens: calls are refused at once
(:class:`CircuitOpen`, carrying how long to wait) for ``open_seconds``. The first call
after that finds it half-open, where ``half_open_calls`` trial calls are let through and
any more refused; when all trials have finished, their failure rate decides: at or above
the threshold it opens again, below it closes with an empty window.

Only failures of the *connection* count (timeouts, refused connections, 5xx): a contract
error is an answer, and the caller decides what it records.

``on_state_change(breaker, old, new)`` is told of every transition (metrics, logs).
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from contracts import DependencyUnavailable

__all__ = ("BreakerState", "CircuitBreaker", "CircuitOpen", "StateChangeHook")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


StateChangeHook = Callable[["CircuitBreaker", BreakerState, BreakerState], None]


class CircuitOpen(Exception):
    """The breaker refuses the call; try again after ``retry_after`` seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f}s")


class CircuitBreaker:
    __slots__ = (
        "_clock",
        "_half_open_calls",
        "_in_flight",
        "_minimum_calls",
        "_on_state_change",
        "_open_seconds",
        "_opened_at",
        "_outcomes",
        "_state",
        "_threshold",
        "_trials",
        "name",
    )

    def __init__(
        self,
        name: str,
        *,
        failure_rate_threshold: float = 50.0,
        window_size: int = 20,
        minimum_calls: int = 10,
        open_seconds: float = 10.0,
        half_open_calls: int = 3,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateChangeHook | None = None,
    ) -> None:
        if not 0 < failure_rate_threshold <= 100:
            raise ValueError("failure_rate_threshold is a percentage in (0, 100]")
        if not 1 <= minimum_calls <= window_size:
            raise ValueError("minimum_calls must be between 1 and window_size")
        self.name = name
        self._threshold = failure_rate_threshold
        self._minimum_calls = minimum_calls
        self._open_seconds = open_seconds
        self._half_open_calls = half_open_calls
        self._clock = clock
        self._outcomes: deque[bool] = deque(maxlen=window_size)  # True = failed
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._trials: list[bool] = []
        self._in_flight = 0  # trial calls let through while half-open
        self._on_state_change = on_state_change

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_seconds:
            self._enter(BreakerState.HALF_OPEN)
            self._trials, self._in_flight = [], 0
        return self._state

    @property
    def failure_rate(self) -> float | None:
        """Percent of failed calls in the window; None until it holds ``minimum_calls``."""
        if len(self._outcomes) < self._minimum_calls:
            return None
        return 100.0 * sum(self._outcomes) / len(self._outcomes)

    def acquire(self) -> None:
        """Ask to make a call; raises CircuitOpen if the breaker refuses it."""
        state = self.state
        if state is BreakerState.OPEN:
            raise CircuitOpen(self.name, self._open_seconds - (self._clock() - self._opened_at))
        if state is BreakerState.HALF_OPEN:
            if self._in_flight >= self._half_open_calls:
                raise CircuitOpen(self.name, 0.0)
            self._in_flight += 1

    def admit(self, callee: str) -> None:
        """``acquire``, as the contract error every caller answers with while the breaker refuses."""
        try:
            self.acquire()
        except CircuitOpen as refused:
            raise DependencyUnavailable(
                f"{callee} is failing; not calling it for now", retry_after=max(refused.retry_after, 1.0)
            ) from None

    def record_status(self, status: int) -> bool:
        """Count an HTTP answer; True when it was a failure: a 5xx other than 503 (busy, and saying so)."""
        failed = status >= 500 and status != 503
        self._record(failed=failed)
        return failed

    def record_success(self) -> None:
        self._record(failed=False)

    def record_failure(self) -> None:
        self._record(failed=True)

    def _record(self, *, failed: bool) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._trials.append(failed)
            if len(self._trials) >= self._half_open_calls:
                trial_rate = 100.0 * sum(self._trials) / len(self._trials)
                self._open() if trial_rate >= self._threshold else self._close()
            return
        if self._state is BreakerState.OPEN:
            return  # a call let through before opening finished late; the window is stale
        self._outcomes.append(failed)
        rate = self.failure_rate
        if rate is not None and rate >= self._threshold:
            self._open()

    def _open(self) -> None:
        self._enter(BreakerState.OPEN)
        self._opened_at = self._clock()
        self._outcomes.clear()

    def _close(self) -> None:
        self._enter(BreakerState.CLOSED)
        self._outcomes.clear()
        self._trials, self._in_flight = [], 0

    def _enter(self, state: BreakerState) -> None:
        old, self._state = self._state, state
        if self._on_state_change is not None and old is not state:
            self._on_state_change(self, old, state)
