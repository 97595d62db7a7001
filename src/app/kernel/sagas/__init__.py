"""Sagas: work that spans modules, as local steps with compensations, run from a durable log."""

from app.kernel.sagas.definition import Saga, Step, StepContext, is_transient
from app.kernel.sagas.orchestrator import ENDED, Orchestrator, SagaRun, SagaStep, SagaUnknown

__all__ = (
    "ENDED",
    "Orchestrator",
    "Saga",
    "SagaRun",
    "SagaStep",
    "SagaUnknown",
    "Step",
    "StepContext",
    "is_transient",
)
