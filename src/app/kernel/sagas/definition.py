"""A saga's definition: plain code that says its steps, their compensations and its pivot.

The classic shape (Garcia-Molina and Salem's sagas, as orchestrated today): first the
*compensatable* steps, each with an action and a compensation that semantically undoes it;
then one *pivot*, the go/no-go point with no compensation; then the *retriable* steps, which
cannot fail for good and are retried until they succeed.

Every action and compensation is given a :class:`StepContext` whose ``step_key`` is the same
each time that step of that saga runs: the contract method it calls takes it, so a retried
or replayed step has its effect once.

The definition says *what* to call, never *how*: ``ctx`` carries the contracts the
orchestrating module was given — local services in one process, remote adapters in a split
— so the same definition runs in both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec

from contracts import ContractError, DependencyUnavailable, Throttled

__all__ = ("Saga", "Step", "StepContext", "is_transient")

D = TypeVar("D", bound=msgspec.Struct)

Action = Callable[["StepContext[Any]"], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class StepContext(Generic[D]):
    """What a step's action or compensation is told: which saga, its input, what came before."""

    saga_id: UUID
    step: str
    data: D
    outcomes: Mapping[str, Any]  # each finished step's outcome, as JSON values, by step name

    @property
    def step_key(self) -> str:
        """The same on every attempt of this step of this saga: the callee's idempotency key."""
        return f"{self.saga_id}:{self.step}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One local transaction of the saga, in another module, through its contract.

    ``action`` returns the step's outcome (a msgspec Struct or JSON values; kept in the saga
    log and shown to whoever asks). ``compensation`` undoes it semantically and returns what
    it could and could not restore. ``attempts``: how often a step before the pivot is tried
    before the saga compensates; a step from the pivot on is retried with backoff for ever,
    and its saga is flagged *stuck* after ``attempts`` failures.
    """

    name: str
    action: Action
    compensation: Action | None = None
    pivot: bool = False
    timeout_seconds: float = 10.0
    attempts: int = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class Saga(Generic[D]):
    """A saga type: its name (stable: it is stored), its input type and its steps in order."""

    name: str
    data: type[D]
    steps: tuple[Step, ...]
    backoff_initial_seconds: float = 0.2
    backoff_max_seconds: float = 30.0
    _positions: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"saga {self.name}: step names repeat: {names}")
        pivots = [i for i, step in enumerate(self.steps) if step.pivot]
        if len(pivots) > 1:
            raise ValueError(f"saga {self.name}: more than one pivot")
        for i, step in enumerate(self.steps):
            if pivots and i >= pivots[0] and step.compensation is not None:
                raise ValueError(f"saga {self.name}: {step.name} is at or after the pivot: nothing undoes it")
        object.__setattr__(self, "_positions", {name: i for i, name in enumerate(names)})

    @property
    def pivot(self) -> int:
        """The pivot's position; without one, every step is compensatable (len(steps))."""
        return next((i for i, step in enumerate(self.steps) if step.pivot), len(self.steps))

    def position(self, name: str) -> int:
        return self._positions[name]


def is_transient(error: BaseException) -> bool:
    """Worth trying again: the callee was away or slow, not a refusal it will repeat.

    A contract error (the successor is not active, say) is the callee's answer: asking again
    gets the same one. Anything else — a timeout, an unreachable module, a dropped
    connection, a bug that may be fixed — may pass.
    """
    if isinstance(error, DependencyUnavailable | Throttled):
        return True
    return not isinstance(error, ContractError)
