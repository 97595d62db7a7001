"""Probes: liveness (the process answers) and readiness (every module's database answers)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency

from app.composition.container import Composition
from app.kernel.problems import Problem, problem_response, problem_responses
from app.kernel.security import public
from contracts import FieldError

__all__ = ("HealthController",)

log = logging.getLogger("tessera.health")


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
        responses=problem_responses(503),
        summary="Readiness probe: each module's database answers",
    )
    async def ready(
        self, request: Request[Any, Any, Any], composition: NamedDependency[Composition]
    ) -> HealthStatus | Response[Problem]:
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
        if failed:
            return problem_response(
                request,
                status=503,
                code="health.not_ready",
                errors=failed,
                detail="a module's database did not answer",
            )
        return HealthStatus(status="ok", modules=dict.fromkeys(names, "ok"))
