"""Probes: liveness (the process answers) and readiness (every module's database answers, and
the process is not draining after a SIGTERM)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import Controller, Request, get
from litestar.di import NamedDependency

from app.composition.container import Composition
from app.kernel.problems import problem_responses
from app.kernel.security import public
from app.kernel.server import Drain
from contracts import ContractError, FieldError

__all__ = ("HealthController",)

log = logging.getLogger("tessera.health")


class NotReady(ContractError):
    """A module's database did not answer: the process should get no traffic."""

    code = "health.not_ready"
    status = 503
    title = "Not ready"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("a module's database did not answer")


class HealthStatus(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    modules: dict[str, str] = msgspec.field(default_factory=dict)


class HealthController(Controller):
    path = "/health"
    tags = ("health",)
    include_in_schema = True

    @get(
        "/live",
        opt=public("probes run without credentials"),
        responses=problem_responses(),
        summary="Liveness probe",
    )
    async def live(self) -> HealthStatus:
        return HealthStatus(status="ok")

    @get(
        "/ready",
        opt=public("probes run without credentials"),
        responses=problem_responses(NotReady),
        summary="Readiness probe: each module's database answers, the token keys are known, "
        "and the process is not shutting down",
    )
    async def ready(
        self, request: Request[Any, Any, Any], composition: NamedDependency[Composition]
    ) -> HealthStatus:
        drain: Drain | None = request.app.state.get("drain")
        if drain is not None and drain.draining:  # SIGTERM: out of rotation before the listener closes
            raise NotReady([FieldError(field="process", message="shutting down")])
        names = [m.name for m in composition.modules]
        outcomes = await asyncio.gather(
            *(asyncio.wait_for(m.database.ping(), timeout=2.0) for m in composition.modules),
            return_exceptions=True,
        )
        failed: list[FieldError] = []
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("readiness: %s database failed: %r", name, outcome)
                failed.append(FieldError(field=name, message="database did not answer"))
        keys = composition.published_keys
        if keys is not None and composition.modules and not keys.known:
            # Identity runs elsewhere and has not been reached yet: every token would be refused.
            failed.append(
                FieldError(field="token_keys", message="identity's public keys are not fetched yet")
            )
        if failed:
            raise NotReady(failed)
        return HealthStatus(status="ok", modules=dict.fromkeys(names, "ok"))
