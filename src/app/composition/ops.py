"""What each process tells the ops console, and the operator's few actions, as a contract.

Every process implements ``OpsApi`` over what it runs (:class:`LocalOps`); in a split each
group serves it at ``/internal/ops/...`` behind service tokens like a module's contract, and
the process showing the console calls every other group through the generated remote adapter.
The console (``app.composition.ui.ops``) checks the viewer is an administrator first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

import msgspec

from app.composition.container import ComposedModule, Composition
from app.kernel.rpc import remote
from app.kernel.sagas import SagaRun
from contracts import Contract, ContractError, idempotent

__all__ = (
    "OPS",
    "GroupOps",
    "LocalOps",
    "ModuleOps",
    "NoSuchProjection",
    "NoSuchSagaRun",
    "OpsApi",
    "ProjectionOps",
    "RebuildStarted",
    "SagaRunOps",
    "ops_of_every_group",
)

log = logging.getLogger("tessera.ops")

BACKLOG_TIMEOUT_SECONDS = 0.3
REBUILD_GRACE_SECONDS = 10.0


class ModuleOps(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One module as its process sees it: its contract, its database, its outbox backlog."""

    name: str
    contract: str  # "tasks 2.3"
    database: str  # "ok", or what went wrong
    outbox_pending: int
    outbox_failed: int
    oldest_pending_seconds: float
    inbox_waiting: int | None  # events the bus holds for it, not yet handled; None: consumes none, or unknown


class ProjectionOps(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    module: str
    name: str
    position: int
    head: int
    lag: int


class SagaRunOps(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: UUID
    module: str
    saga: str
    state: str
    step: str | None
    reason: str | None
    attempts: int  # of the step in hand
    updated_at: str


class GroupOps(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One process's modules, backlogs, breakers, projections and open sagas."""

    group: str
    modules: list[ModuleOps]
    breakers: dict[str, str]  # remote group -> closed | open | half_open
    bus: str
    projections: list[ProjectionOps]
    open_sagas: dict[str, int]  # state -> runs not ended


class RebuildStarted(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    module: str
    name: str


class NoSuchSagaRun(ContractError):
    code = "ops.no_such_saga_run"
    status = 404
    title = "No such saga run here"


class NoSuchProjection(ContractError):
    code = "ops.no_such_projection"
    status = 404
    title = "No such projection here"


@runtime_checkable
class OpsApi(Protocol):
    @idempotent
    async def snapshot(self) -> GroupOps:
        """What this process runs and how it is doing."""
        ...

    @idempotent
    async def saga_runs(self, state: str | None = None) -> list[SagaRunOps]:
        """The newest saga runs of this process's modules (of ``state``, if given)."""
        ...

    async def retry_saga(self, run_id: UUID) -> SagaRunOps:
        """Try a waiting or stuck run's step in hand now."""
        ...

    async def rebuild_projection(self, module: str, name: str) -> RebuildStarted:
        """Start rebuilding a projection from the whole store; it swaps in when done."""
        ...


OPS: Contract[OpsApi] = Contract(
    name="ops", version="1.0", api=OpsApi, errors=(NoSuchSagaRun, NoSuchProjection)
)


class LocalOps(OpsApi):
    """OpsApi over this process's own modules."""

    def __init__(self, composition: Composition) -> None:
        self._composition = composition
        self._rebuilds: set[asyncio.Task[Any]] = set()

    async def snapshot(self) -> GroupOps:
        composition = self._composition
        modules = await asyncio.gather(*(self._module(m) for m in composition.modules))
        projections = [
            ProjectionOps(module=s.module, name=s.name, position=s.position, head=s.head, lag=s.lag)
            for projector in composition.projectors
            for s in await projector.status()
        ]
        open_sagas: dict[str, int] = {}
        for orchestrator in composition.orchestrators:
            for (_saga, state), count in (await orchestrator.counts()).items():
                open_sagas[state] = open_sagas.get(state, 0) + count
        return GroupOps(
            group=composition.placement.group,
            modules=list(modules),
            breakers={peer.name: peer.breaker.state.value for peer in composition.placement.peers},
            bus=composition.settings.events.bus,
            projections=projections,
            open_sagas=open_sagas,
        )

    async def saga_runs(self, state: str | None = None) -> list[SagaRunOps]:
        runs = []
        for orchestrator in self._composition.orchestrators:
            for run in await orchestrator.runs(states=[state] if state else ()):
                runs.append(_run_ops(orchestrator.module, run))
        return sorted(runs, key=lambda r: r.updated_at, reverse=True)

    async def retry_saga(self, run_id: UUID) -> SagaRunOps:
        for orchestrator in self._composition.orchestrators:
            if await orchestrator.get(run_id) is not None:
                return _run_ops(orchestrator.module, await orchestrator.retry(run_id))
        raise NoSuchSagaRun(f"no saga run {run_id} in this process")

    async def rebuild_projection(self, module: str, name: str) -> RebuildStarted:
        for projector in self._composition.projectors:
            if projector.module == module and name in projector.names:
                self._in_background(projector.rebuild(name))
                return RebuildStarted(module=module, name=name)
        raise NoSuchProjection(f"no projection {module}.{name} in this process")

    async def aclose(self) -> None:
        """At shutdown: let a rebuild under way finish (a rebuild swaps in at its end), then stop."""
        if self._rebuilds:
            _done, late = await asyncio.wait(self._rebuilds, timeout=REBUILD_GRACE_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._rebuilds.add(task)
        task.add_done_callback(_finished(self._rebuilds))

    async def _module(self, composed: ComposedModule) -> ModuleOps:
        contract = composed.module.provides
        try:
            async with asyncio.timeout(2.0):
                await composed.database.ping()
                # A module that publishes nothing has no outbox (it makes only the tables it uses).
                outbox = await composed.outbox.status() if composed.module.publishes else None
        except Exception as exc:
            return ModuleOps(
                name=composed.name,
                contract=f"{contract.name} {contract.version}",
                database=f"unavailable: {type(exc).__name__}",
                outbox_pending=0,
                outbox_failed=0,
                oldest_pending_seconds=0.0,
                inbox_waiting=await self._inbox_waiting(composed),
            )
        return ModuleOps(
            name=composed.name,
            contract=f"{contract.name} {contract.version}",
            database="ok",
            outbox_pending=outbox.pending if outbox else 0,
            outbox_failed=outbox.failed if outbox else 0,
            oldest_pending_seconds=round(outbox.lag_seconds, 1) if outbox else 0.0,
            inbox_waiting=await self._inbox_waiting(composed),
        )

    async def _inbox_waiting(self, composed: ComposedModule) -> int | None:
        bus = self._composition.events.bus
        if not composed.module.consumes or not bus.connected:
            return None
        try:  # briefly: a snapshot must answer within the caller's timeout, broker or not
            async with asyncio.timeout(BACKLOG_TIMEOUT_SECONDS):
                return await bus.backlog(composed.name)
        except Exception:
            return None


def ops_of_every_group(composition: Composition, local: OpsApi) -> dict[str, OpsApi]:
    """OpsApi of every process of the topology: this one's own, every other group's remote adapter."""
    groups: dict[str, OpsApi] = {composition.placement.group: local}
    remotes = composition.remotes
    if remotes.http is not None and remotes.tokens is not None:
        for peer in composition.placement.peers:
            groups[peer.name] = remote(
                OPS, group=peer, http=remotes.http, tokens=remotes.tokens, settings=composition.settings.rpc
            )
    return groups


def _run_ops(module: str, run: SagaRun) -> SagaRunOps:
    step = next((s for s in run.steps if s.name == run.step), None)
    return SagaRunOps(
        id=run.id,
        module=module,
        saga=run.saga,
        state=run.state,
        step=run.step,
        reason=run.reason,
        attempts=step.attempts if step else 0,
        updated_at=run.updated_at.isoformat(timespec="seconds"),
    )


def _finished(running: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        running.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("a projection rebuild failed: %r", error)

    return done
