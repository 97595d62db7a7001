"""The circuit breaker, state by state, on a clock the test moves."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from app.kernel.resilience import BreakerState, CircuitBreaker, CircuitOpen
from app.kernel.telemetry.metrics import watch_breaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(
        "identity",
        failure_rate_threshold=50,
        window_size=10,
        minimum_calls=4,
        open_seconds=30,
        half_open_calls=2,
        clock=clock,
    )


def _calls(breaker: CircuitBreaker, outcomes: str) -> None:
    """Make one call per character: '.' succeeds, 'x' fails."""
    for outcome in outcomes:
        breaker.acquire()
        breaker.record_failure() if outcome == "x" else breaker.record_success()


def _open(breaker: CircuitBreaker) -> None:
    _calls(breaker, "xxxx")
    assert breaker.state is BreakerState.OPEN


def test_it_starts_closed_and_lets_calls_through(breaker: CircuitBreaker) -> None:
    _calls(breaker, "..x.")
    assert breaker.state is BreakerState.CLOSED


def test_failures_below_the_minimum_number_of_calls_do_not_open_it(breaker: CircuitBreaker) -> None:
    _calls(breaker, "xxx")
    assert breaker.failure_rate is None
    assert breaker.state is BreakerState.CLOSED


def test_it_opens_when_the_failure_rate_reaches_the_threshold(breaker: CircuitBreaker) -> None:
    _calls(breaker, "..x")
    assert breaker.state is BreakerState.CLOSED
    _calls(breaker, "x")  # 2 of 4 = 50 %
    assert breaker.state is BreakerState.OPEN


def test_the_rate_is_over_a_sliding_window_of_the_last_calls(breaker: CircuitBreaker) -> None:
    _calls(breaker, "." * 7 + "xxx")
    assert breaker.failure_rate == 30.0
    _calls(breaker, "." * 10)  # the old failures slide out of the last ten
    assert breaker.failure_rate == 0.0
    _calls(breaker, "xxxx")
    assert breaker.failure_rate == 40.0
    assert breaker.state is BreakerState.CLOSED
    _calls(breaker, "x")
    assert breaker.state is BreakerState.OPEN


def test_an_open_breaker_refuses_calls_and_says_when_to_retry(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(10)
    with pytest.raises(CircuitOpen) as refused:
        breaker.acquire()
    assert refused.value.retry_after == pytest.approx(20)


def test_after_the_wait_it_is_half_open_and_lets_a_bounded_number_of_trials_through(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(30)
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.acquire()
    breaker.acquire()
    with pytest.raises(CircuitOpen):
        breaker.acquire()


def test_successful_trials_close_it_with_a_fresh_window(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.advance(30)
    _calls(breaker, "..")
    assert breaker.state is BreakerState.CLOSED
    assert breaker.failure_rate is None
    _calls(breaker, "xxx")
    assert breaker.state is BreakerState.CLOSED


def test_failing_trials_open_it_again_for_another_full_wait(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    _open(breaker)
    clock.advance(30)
    _calls(breaker, ".x")  # 50 % of the trials
    assert breaker.state is BreakerState.OPEN
    clock.advance(29)
    assert breaker.state is BreakerState.OPEN
    clock.advance(1)
    assert breaker.state is BreakerState.HALF_OPEN


def test_the_verdict_waits_for_every_trial(breaker: CircuitBreaker, clock: FakeClock) -> None:
    _open(breaker)
    clock.advance(30)
    _calls(breaker, "x")
    assert breaker.state is BreakerState.HALF_OPEN


def test_outcomes_of_calls_started_before_it_opened_are_ignored(breaker: CircuitBreaker) -> None:
    breaker.acquire()  # a slow call, still under way
    _open(breaker)
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN


@pytest.mark.parametrize(
    "settings",
    [
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 101},
        {"minimum_calls": 11, "window_size": 10},
    ],
)
def test_nonsense_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|percentage"):
        CircuitBreaker("x", **settings)  # type: ignore[arg-type]


def test_an_answer_counts_as_a_failure_only_when_it_is_a_5xx_other_than_503(breaker: CircuitBreaker) -> None:
    counted = []
    for status in (200, 404, 422, 503, 500, 502):
        breaker.acquire()
        counted.append(breaker.record_status(status))
    assert counted == [False, False, False, False, True, True]
    assert breaker.failure_rate == pytest.approx(100 * 2 / 6)


def test_admission_refused_by_an_open_breaker_is_the_contract_error_with_a_retry_after(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    from contracts import DependencyUnavailable

    _calls(breaker, "xxxx")
    clock.advance(10)
    with pytest.raises(DependencyUnavailable, match="identity is failing") as refused:
        breaker.admit("identity")
    assert refused.value.retry_after == pytest.approx(20)


def test_every_transition_is_told_once_to_the_hook_and_to_the_metrics(clock: FakeClock) -> None:
    told: list[tuple[str, str]] = []
    hook = watch_breaker("tasks-peer")

    def record(breaker: CircuitBreaker, old: BreakerState, new: BreakerState) -> None:
        told.append((old, new))
        hook(breaker, old, new)

    breaker = CircuitBreaker(
        "tasks-peer",
        minimum_calls=2,
        window_size=2,
        open_seconds=5,
        half_open_calls=1,
        clock=clock,
        on_state_change=record,
    )
    state = REGISTRY.get_sample_value
    assert state("tessera_circuit_breaker_state", {"group": "tasks-peer"}) == 0
    opened_before = state(
        "tessera_circuit_breaker_transitions_total", {"group": "tasks-peer", "state": "open"}
    )
    _calls(breaker, "xx")
    assert state("tessera_circuit_breaker_state", {"group": "tasks-peer"}) == 2
    clock.advance(5)
    _calls(breaker, ".")  # the one trial call succeeds
    assert told == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    assert state("tessera_circuit_breaker_state", {"group": "tasks-peer"}) == 0
    opened_after = state(
        "tessera_circuit_breaker_transitions_total", {"group": "tasks-peer", "state": "open"}
    )
    assert (opened_after or 0) - (opened_before or 0) == 1
