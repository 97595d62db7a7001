"""What a process tells the ops console (LocalOps), over the monolith's real modules."""

from __future__ import annotations

import uuid

import pytest

from app.composition.container import Composition
from app.composition.ops import OPS, LocalOps, NoSuchProjection, NoSuchSagaRun
from app.kernel.rpc import strict
from contracts import Principal
from contracts.tasks import TaskDraft


async def test_a_snapshot_names_every_module_its_contract_and_its_backlog(composition: Composition) -> None:
    ops = strict(OPS, LocalOps(composition))  # what crosses the wire to the console
    await (
        composition.module("tasks").api().create_task(Principal(user_id=uuid.uuid4()), TaskDraft(title="One"))
    )
    snapshot = await ops.snapshot()
    modules = {m.name: m for m in snapshot.modules}
    assert {name: m.contract for name, m in modules.items()} == {
        m.name: f"{m.module.provides.name} {m.module.provides.version}" for m in composition.modules
    }
    assert all(m.database == "ok" for m in modules.values())
    assert modules["tasks"].outbox_pending == 1  # nothing relays here: the events wait
    assert (modules["notifications"].inbox_waiting, modules["identity"].inbox_waiting) == (0, None)
    assert {p.name for p in snapshot.projections} == {"timeline", "feed", "stats", "audit"}
    assert (snapshot.bus, snapshot.breakers, snapshot.open_sagas) == ("inprocess", {}, {})


async def test_the_console_asks_only_for_what_this_process_has(composition: Composition) -> None:
    local = LocalOps(composition)
    ops = strict(OPS, local)
    with pytest.raises(NoSuchSagaRun):
        await ops.retry_saga(uuid.uuid4())
    with pytest.raises(NoSuchProjection):
        await ops.rebuild_projection("tasks", "timeline")
    assert await ops.saga_runs("stuck") == []
    started = await ops.rebuild_projection("activity", "timeline")
    assert (started.module, started.name) == ("activity", "timeline")
    await local.aclose()  # waits for the rebuild under way
